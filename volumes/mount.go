package volumes

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Mounter is the part of the mount table volumes need. It is an interface so that unit
// tests run without CAP_SYS_ADMIN.
type Mounter interface {
	// MountTmpfs mounts a new tmpfs on dir with the given options ("size=64m").
	MountTmpfs(dir string, options []string) error
	// Unmount unmounts dir.
	Unmount(dir string) error
	// IsMountPoint reports whether dir is the mount point of a mount.
	IsMountPoint(dir string) (bool, error)
	// MountPointsUnder lists the mount points at or below dir.
	MountPointsUnder(dir string) ([]string, error)
}

// sysMounter is the Mounter of the host, reading /proc/self/mountinfo.
type sysMounter struct{}

func (sysMounter) MountTmpfs(dir string, options []string) error {
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, strings.Join(options, ",")); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	return nil
}

func (sysMounter) Unmount(dir string) error {
	err := unix.Unmount(dir, 0)
	if errors.Is(err, unix.EBUSY) {
		// A container still holding it open must not keep the pod's volumes forever;
		// a lazy unmount detaches it now and frees it when the last user goes.
		err = unix.Unmount(dir, unix.MNT_DETACH)
	}
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}

func (s sysMounter) IsMountPoint(dir string) (bool, error) {
	mps, err := s.MountPointsUnder(dir)
	if err != nil {
		return false, err
	}
	for _, mp := range mps {
		if mp == dir {
			return true, nil
		}
	}
	return false, nil
}

func (sysMounter) MountPointsUnder(dir string) ([]string, error) {
	dir = filepath.Clean(dir)
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		// Field 5 is the mount point, octal-escaped (" " is \040).
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountPoint(fields[4])
		if isWithin(mp, dir) {
			out = append(out, mp)
		}
	}
	return out, sc.Err()
}

func unescapeMountPoint(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
