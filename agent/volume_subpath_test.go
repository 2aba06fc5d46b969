package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSubPathHostStaysInTheVolume: a container that links `esc -> /` in an emptyDir must
// not get the host's root mounted through `subPath: esc`; a missing subPath directory gets
// the volume's mode so a non-root container can write to it.
func TestSubPathHostStaysInTheVolume(t *testing.T) {
	root := filepath.Join(t.TempDir(), "vol")
	if err := os.Mkdir(root, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(root, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/", filepath.Join(root, "esc")); err != nil {
		t.Fatal(err)
	}
	host, err := subPathHost(root, "esc/tmp")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(host, root+string(filepath.Separator)) {
		t.Fatalf("subPath esc/tmp resolved to %s, outside the volume %s", host, root)
	}
	info, err := os.Stat(host)
	if err != nil {
		t.Fatalf("the missing subPath directory was not created: %v", err)
	}
	if info.Mode().Perm() != 0o777 {
		t.Errorf("subPath directory mode %v, want the volume's 0777", info.Mode().Perm())
	}
}
