package volumes

import (
	"os"
	"path/filepath"
	"testing"
)

func TestResolveSubPathStaysInsideTheVolume(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "dir", "sub"), 0o755))
	must(os.WriteFile(filepath.Join(root, "dir", "file"), nil, 0o644))
	must(os.Symlink("/", filepath.Join(root, "escape")))                  // what a container can do
	must(os.Symlink("../../../../etc", filepath.Join(root, "dir", "up"))) // climbing out
	must(os.Symlink("sub", filepath.Join(root, "dir", "rel")))            // a harmless relative link
	must(os.Symlink("/dir/file", filepath.Join(root, "abs")))             // absolute, from the volume's root
	must(os.Symlink("loop", filepath.Join(root, "loop")))

	for _, c := range []struct{ subPath, want string }{
		{"dir/sub", "dir/sub"},
		{"escape", ""},
		{"escape/etc/passwd", "etc/passwd"},
		{"dir/up", "etc"},
		{"dir/up/shadow", "etc/shadow"},
		{"../../etc", "etc"},
		{"dir/rel", "dir/sub"},
		{"dir/rel/new", "dir/sub/new"},
		{"abs", "dir/file"},
		{"missing/deeper", "missing/deeper"},
	} {
		got, err := ResolveSubPath(root, c.subPath)
		if err != nil {
			t.Errorf("%s: %v", c.subPath, err)
			continue
		}
		if want := filepath.Join(root, c.want); got != want {
			t.Errorf("%s resolves to %s, want %s", c.subPath, got, want)
		}
	}
	if _, err := ResolveSubPath(root, "loop"); err == nil {
		t.Error("a symlink loop resolved")
	}
	if _, err := ResolveSubPath(root, "/etc"); err == nil {
		t.Error("an absolute subPath was accepted")
	}
}
