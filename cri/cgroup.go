package cri

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The PID namespace holder is the one process skiff places in a cgroup itself (runc
// places everything else). This is the little of runc's cgroupfs driver it needs: the
// cgroup at a path in every mounted hierarchy, v1 or v2.

// cgroupMounts lists the mount points of the cgroup hierarchies.
func cgroupMounts() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// mountinfo: ID parent major:minor root mountpoint options [optional...] - fstype source superoptions
		fields := strings.Fields(sc.Text())
		for i, field := range fields {
			if field == "-" && i+1 < len(fields) && i > 4 {
				if fstype := fields[i+1]; fstype == "cgroup" || fstype == "cgroup2" {
					mounts = append(mounts, fields[4])
				}
				break
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(mounts) == 0 {
		return nil, errors.New("no cgroup hierarchy is mounted")
	}
	return mounts, nil
}

// addToCgroup creates the cgroup at path in every hierarchy and moves pid into it.
func addToCgroup(path string, pid int) error {
	mounts, err := cgroupMounts()
	if err != nil {
		return fmt.Errorf("move process %d into cgroup %s: %w", pid, path, err)
	}
	for _, mount := range mounts {
		dir := filepath.Join(mount, filepath.Clean("/"+path))
		if err := makeCgroup(mount, dir); err != nil {
			return fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			return fmt.Errorf("move process %d into cgroup %s: %w", pid, dir, err)
		}
	}
	return nil
}

// makeCgroup creates dir and the missing cgroups above it. A new v1 cpuset cgroup has no
// CPUs or memory nodes, and takes no process until given its parent's.
func makeCgroup(mount, dir string) error {
	if _, err := os.Stat(dir); err == nil || dir == mount {
		return nil
	}
	if err := makeCgroup(mount, filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	for _, file := range []string{"cpuset.cpus", "cpuset.mems"} {
		own := filepath.Join(dir, file)
		if cur, err := os.ReadFile(own); err != nil || strings.TrimSpace(string(cur)) != "" {
			continue // not a v1 cpuset cgroup, or already set
		}
		parent, err := os.ReadFile(filepath.Join(filepath.Dir(dir), file))
		if err != nil {
			return err
		}
		if err := os.WriteFile(own, parent, 0); err != nil {
			return err
		}
	}
	return nil
}

// deleteCgroup removes the cgroup at path (not its parents) from every hierarchy; one
// that is gone is not an error.
func deleteCgroup(path string) error {
	mounts, err := cgroupMounts()
	if err != nil {
		return fmt.Errorf("delete cgroup %s: %w", path, err)
	}
	var errs []error
	for _, mount := range mounts {
		dir := filepath.Join(mount, filepath.Clean("/"+path))
		if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("delete cgroup %s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}
