package volumes

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// TestRealTmpfs runs the Manager with the host's mount table: a memory emptyDir with a
// size limit and a secret volume are real tmpfs mounts, and Teardown leaves none behind.
func TestRealTmpfs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting tmpfs needs root")
	}
	root := t.TempDir()
	m, err := NewManager(Config{RootDir: root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Whatever happens, leave no mount behind.
		mps, _ := sysMounter{}.MountPointsUnder(root)
		for _, mp := range mps {
			unix.Unmount(mp, unix.MNT_DETACH)
		}
	})
	limit := resource.MustParse("8Mi")
	src := &fakeSources{secrets: map[string]*v1.Secret{"default/s": {Data: map[string][]byte{"k": []byte("v")}}}}
	pod := testPod(
		v1.Volume{Name: "shm", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory, SizeLimit: &limit}}},
		v1.Volume{Name: "sec", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "s"}}},
	)
	paths, err := m.Setup(t.Context(), pod, src)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"shm", "sec"} {
		var st unix.Statfs_t
		if err := unix.Statfs(paths[name], &st); err != nil {
			t.Fatal(err)
		}
		if st.Type != unix.TMPFS_MAGIC {
			t.Errorf("%s is not on a tmpfs (fs type %x)", name, st.Type)
		}
		if name == "shm" && uint64(st.Blocks)*uint64(st.Bsize) != 8<<20 {
			t.Errorf("shm size = %d bytes, want 8Mi", uint64(st.Blocks)*uint64(st.Bsize))
		}
	}
	if got := readFile(t, filepath.Join(paths["sec"], "k")); got != "v" {
		t.Errorf("secret file = %q", got)
	}
	// Setup again must not stack a second mount.
	if _, err := m.Setup(t.Context(), pod, src); err != nil {
		t.Fatal(err)
	}
	mps, err := sysMounter{}.MountPointsUnder(root)
	if err != nil || len(mps) != 2 {
		t.Errorf("mounts under root after two Setups = %v, %v; want 2", mps, err)
	}
	if err := m.Teardown(t.Context(), pod.UID); err != nil {
		t.Fatal(err)
	}
	if mps, _ := (sysMounter{}).MountPointsUnder(root); len(mps) != 0 {
		t.Errorf("Teardown left mounts %v", mps)
	}
	if _, err := os.Stat(filepath.Join(root, "pods", string(pod.UID), "volumes")); !os.IsNotExist(err) {
		t.Errorf("Teardown left the volumes dir: %v", err)
	}
}

func TestUnescapeMountPoint(t *testing.T) {
	if got := unescapeMountPoint(`/a\040b\011c`); got != "/a b\tc" {
		t.Errorf("got %q", got)
	}
}
