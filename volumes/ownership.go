package volumes

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	v1 "k8s.io/api/core/v1"
)

// Permission bits kubelet adds for a pod's fsGroup (volume.SetVolumeOwnership): group
// read(-write) on files, plus setgid and group search on directories so that new files
// inherit the group.
const (
	fsGroupRW   fs.FileMode = 0o660
	fsGroupRO   fs.FileMode = 0o440
	fsGroupExec fs.FileMode = 0o110
)

func podFSGroup(pod *v1.Pod) *int64 {
	if sc := pod.Spec.SecurityContext; sc != nil {
		return sc.FSGroup
	}
	return nil
}

// setOwnership gives everything under dir to the pod's fsGroup, as kubelet does for the
// volume types it manages. Symlinks are re-owned but never followed or chmod'ed.
func setOwnership(dir string, fsGroup *int64, readOnly bool) error {
	if fsGroup == nil {
		return nil
	}
	gid := int(*fsGroup)
	mask := fsGroupRW
	if readOnly {
		mask = fsGroupRO
	}
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(path, -1, gid); err != nil {
			return fmt.Errorf("fsGroup %d: %w", gid, err)
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		m := mask
		if d.IsDir() {
			m |= fsGroupExec | fs.ModeSetgid
		}
		mode := info.Mode() | m
		if mode == info.Mode() {
			return nil
		}
		// os.Chmod takes the setgid bit from fs.ModeSetgid.
		return os.Chmod(path, mode&(fs.ModePerm|fs.ModeSetgid|fs.ModeSetuid|fs.ModeSticky))
	})
}
