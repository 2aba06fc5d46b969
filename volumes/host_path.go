package volumes

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	v1 "k8s.io/api/core/v1"
)

// setupHostPath checks (or creates) the host path as its type asks and returns it. The
// messages name the path and what it was expected to be, as kubelet's do.
func setupHostPath(src *v1.HostPathVolumeSource) (string, error) {
	p := src.Path
	t := v1.HostPathUnset
	if src.Type != nil {
		t = *src.Type
	}
	switch t {
	case v1.HostPathUnset:
		return p, nil
	case v1.HostPathDirectoryOrCreate:
		if err := createIfMissing(p, func() error { return os.MkdirAll(p, 0o755) }); err != nil {
			return "", fmt.Errorf("hostPath type check failed: %s could not be created: %w", p, err)
		}
		return p, checkHostPathType(p, fs.ModeDir, "a directory")
	case v1.HostPathFileOrCreate:
		if err := createIfMissing(p, func() error { return createFile(p) }); err != nil {
			return "", fmt.Errorf("hostPath type check failed: %s could not be created: %w", p, err)
		}
		return p, checkHostPathType(p, 0, "a file")
	case v1.HostPathDirectory:
		return p, checkHostPathType(p, fs.ModeDir, "a directory")
	case v1.HostPathFile:
		return p, checkHostPathType(p, 0, "a file")
	case v1.HostPathSocket:
		return p, checkHostPathType(p, fs.ModeSocket, "a socket file")
	case v1.HostPathCharDev:
		return p, checkHostPathType(p, fs.ModeDevice|fs.ModeCharDevice, "a character device")
	case v1.HostPathBlockDev:
		return p, checkHostPathType(p, fs.ModeDevice, "a block device")
	}
	return "", fmt.Errorf("hostPath type %q of %s is not supported", t, p)
}

// createIfMissing runs create when nothing is at p; what is there is checked afterwards.
func createIfMissing(p string, create func() error) error {
	if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return create()
}

func createFile(p string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// checkHostPathType follows symlinks (the container sees the target) and compares the
// file type bits with want (0 is a regular file).
func checkHostPathType(p string, want fs.FileMode, what string) error {
	info, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("hostPath type check failed: %s does not exist", p)
	}
	if err != nil {
		return fmt.Errorf("hostPath type check failed: %w", err)
	}
	if info.Mode().Type() != want {
		return fmt.Errorf("hostPath type check failed: %s is not %s", p, what)
	}
	return nil
}
