package volumes

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2/ktesting"
)

func pinTestManager(t *testing.T) *Manager {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("bind mounts need root")
	}
	m, err := NewManager(Config{RootDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestPinSubPath: a subPath reached through a symlink the container planted stays in the
// volume, a missing one is made with the volume's mode, the pin is the volume's own inode,
// a second pin of the same mount is the first one, and Teardown unmounts the pins while
// leaving what they showed (here a hostPath's files) alone.
func TestPinSubPath(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	m := pinTestManager(t)
	root := filepath.Join(t.TempDir(), "hostpath")
	if err := os.Mkdir(root, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(root, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/", filepath.Join(root, "esc")); err != nil {
		t.Fatal(err)
	}
	const uid = "pod-uid"
	target, err := m.PinSubPath(ctx, uid, "data", "app", 0, root, "esc/tmp")
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(root, "tmp"))
	if err != nil || info.Mode().Perm() != 0o777 {
		t.Fatalf("the missing subPath directory: %v, %v (want mode 0777)", info, err)
	}
	if err := os.WriteFile(filepath.Join(target, "written-through-the-pin"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "tmp", "written-through-the-pin")); err != nil {
		t.Errorf("the pin does not show the volume's directory: %v", err)
	}
	if _, err := os.Stat("/tmp/written-through-the-pin"); err == nil {
		t.Errorf("the pin reached the host's /tmp")
	}
	again, err := m.PinSubPath(ctx, uid, "data", "app", 0, root, "esc/tmp")
	if err != nil || again != target {
		t.Errorf("second pin = %s, %v; want the first, %s", again, err, target)
	}
	if mounts, _ := m.cfg.Mounter.MountPointsUnder(target); len(mounts) != 1 {
		t.Errorf("mounts at the pin: %v, want one", mounts)
	}

	if err := m.Teardown(ctx, uid); err != nil {
		t.Fatal(err)
	}
	if mounts, _ := m.cfg.Mounter.MountPointsUnder(m.podSubPathsDir(uid)); len(mounts) != 0 {
		t.Errorf("pins left mounted: %v", mounts)
	}
	if _, err := os.Stat(m.podSubPathsDir(uid)); !os.IsNotExist(err) {
		t.Errorf("pin directory left: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "tmp", "written-through-the-pin")); err != nil {
		t.Errorf("Teardown touched what the pin showed: %v", err)
	}
}

// TestOpenBeneathRefusesSymlinks: a directory swapped for a symlink after the subPath was
// resolved makes the open fail, whichever component it is.
func TestOpenBeneathRefusesSymlinks(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	fd, isDir, err := openBeneath(root, "a/b")
	if err != nil || !isDir {
		t.Fatalf("openBeneath(a/b) = %v, %v", isDir, err)
	}
	_ = unix.Close(fd)
	if err := os.Rename(filepath.Join(root, "a"), filepath.Join(root, "real")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/", filepath.Join(root, "a")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := openBeneath(root, "a/b"); err == nil {
		t.Error("openBeneath followed a symlink in the middle of the path")
	}
	if err := os.Symlink("/etc", filepath.Join(root, "real", "b2")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := openBeneath(root, "real/b2"); err == nil {
		t.Error("openBeneath accepted a symlink as the last component")
	}
	if _, _, err := openBeneath(root, "../x"); err == nil {
		t.Error("openBeneath went above the volume")
	}
}
