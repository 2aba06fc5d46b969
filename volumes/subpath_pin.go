package volumes

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

// PinSubPath returns a host path for the subPath of a volume mount that the runtime can
// mount without a race: the subPath is resolved inside the volume at root
// (ResolveSubPath; created as a directory with the volume's mode when missing), opened
// one component at a time from the volume's root without following a symlink, and the
// inode so opened is bind-mounted on a path of the agent's own under
// <RootDir>/pods/<uid>/volume-subpaths/<volume>/<container>/<index>. A container that
// swaps a directory of its volume for a symlink after the resolution makes the open
// fail; after the open, nothing it does moves the mount. As with kubelet, a pin made
// for an earlier start of the container is used again. Teardown unmounts the pins.
func (m *Manager) PinSubPath(ctx context.Context, podUID types.UID, volume, container string, index int, root, subPath string) (string, error) {
	target := filepath.Join(m.podSubPathsDir(podUID), volume, container, strconv.Itoa(index))
	if pinned, err := m.cfg.Mounter.IsMountPoint(target); err == nil && pinned {
		return target, nil
	}
	host, err := ResolveSubPath(root, subPath)
	if err != nil {
		return "", err
	}
	if err := makeMissingSubPath(root, host); err != nil {
		return "", fmt.Errorf("subPath %q: %w", subPath, err)
	}
	rel, err := filepath.Rel(root, host)
	if err != nil {
		return "", fmt.Errorf("subPath %q: %w", subPath, err)
	}
	fd, isDir, err := openBeneath(root, rel)
	if err != nil {
		return "", fmt.Errorf("subPath %q: %w", subPath, err)
	}
	defer unix.Close(fd)
	if err := makeMountTarget(target, isDir); err != nil {
		return "", fmt.Errorf("subPath %q: %w", subPath, err)
	}
	// The magic link names the opened inode itself, not the path it was opened by.
	if err := unix.Mount(fmt.Sprintf("/proc/self/fd/%d", fd), target, "", unix.MS_BIND, ""); err != nil {
		return "", fmt.Errorf("subPath %q: bind-mount the opened path on %s: %w", subPath, target, err)
	}
	klog.FromContext(ctx).V(4).Info("Pinned subPath", "podUID", podUID, "volume", volume, "subPath", subPath, "target", target)
	return target, nil
}

// makeMissingSubPath creates host, a path under root, as a directory with root's mode when
// it does not exist (so a non-root container can write where it could write in the volume).
func makeMissingSubPath(root, host string) error {
	if _, err := os.Lstat(host); !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	rootInfo, err := os.Stat(root)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(host, rootInfo.Mode().Perm()); err != nil {
		return err
	}
	// MkdirAll's mode passes through the umask; the volume's mode is what kubelet gives.
	return os.Chmod(host, rootInfo.Mode().Perm())
}

// openBeneath opens rel below root one component at a time with O_NOFOLLOW, refusing any
// symlink on the way, and returns an O_PATH descriptor of the result and whether it is a
// directory.
func openBeneath(root, rel string) (fd int, isDir bool, err error) {
	fd, err = unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, false, fmt.Errorf("open volume %s: %w", root, err)
	}
	var st unix.Stat_t
	for _, part := range strings.Split(filepath.ToSlash(rel), "/") {
		if part == "." || part == "" {
			continue
		}
		if part == ".." {
			unix.Close(fd)
			return -1, false, fmt.Errorf("%q leaves the volume", rel)
		}
		next, err := unix.Openat(fd, part, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			return -1, false, fmt.Errorf("open %q in the volume: %w", part, err)
		}
		fd = next
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return -1, false, err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			unix.Close(fd)
			return -1, false, fmt.Errorf("%q became a symbolic link while it was being mounted", part)
		}
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, false, err
	}
	return fd, st.Mode&unix.S_IFMT == unix.S_IFDIR, nil
}

// makeMountTarget creates the pin's mount point: a directory for a directory, an empty
// file for anything else.
func makeMountTarget(target string, isDir bool) error {
	if isDir {
		return os.MkdirAll(target, 0o750)
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
		return err
	}
	f, err := os.OpenFile(target, os.O_CREATE|os.O_RDONLY, 0o640)
	if err != nil {
		return err
	}
	return f.Close()
}
