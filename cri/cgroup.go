package cri

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The PID namespace holder is the one process skiff places in a cgroup itself (runc
// places everything else). This is the little of runc's cgroupfs driver it needs: the
// cgroup at a path in every mounted hierarchy, v1 or v2.

// cgroupMount is one mounted cgroup hierarchy.
type cgroupMount struct {
	dir string
	v1  bool // fstype cgroup, not cgroup2
}

// cgroupMounts lists the mount points of the cgroup hierarchies.
func cgroupMounts() ([]string, error) {
	mounts, err := cgroupHierarchies()
	dirs := make([]string, 0, len(mounts))
	for _, m := range mounts {
		dirs = append(dirs, m.dir)
	}
	return dirs, err
}

// cgroupHierarchies lists the cgroup hierarchies with their versions.
func cgroupHierarchies() ([]cgroupMount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var mounts []cgroupMount
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// mountinfo: ID parent major:minor root mountpoint options [optional...] - fstype source superoptions
		fields := strings.Fields(sc.Text())
		for i, field := range fields {
			if field == "-" && i+1 < len(fields) && i > 4 {
				if fstype := fields[i+1]; fstype == "cgroup" || fstype == "cgroup2" {
					mounts = append(mounts, cgroupMount{dir: fields[4], v1: fstype == "cgroup"})
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
	mounts, err := cgroupHierarchies()
	if err != nil {
		return fmt.Errorf("move process %d into cgroup %s: %w", pid, path, err)
	}
	for _, mount := range mounts {
		dir := filepath.Join(mount.dir, filepath.Clean("/"+path))
		if err := makeCgroup(mount, dir); err != nil {
			return fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			return fmt.Errorf("move process %d into cgroup %s: %w", pid, dir, err)
		}
	}
	return nil
}

// makeCgroup creates dir and the missing cgroups above it. In a v1 cpuset hierarchy a
// cgroup takes no process until it has CPUs and memory nodes, which a new one lacks:
// every level from the mount down gets its parent's if it has none (also one that a
// crash, or a concurrent creation, left empty), as runc does.
func makeCgroup(mount cgroupMount, dir string) error {
	if !mount.v1 {
		return os.MkdirAll(dir, 0o755)
	}
	rel, err := filepath.Rel(mount.dir, dir)
	if err != nil {
		return err
	}
	level := mount.dir
	for _, name := range strings.Split(rel, string(filepath.Separator)) {
		if name == "." {
			continue
		}
		parent := level
		level = filepath.Join(level, name)
		if err := os.Mkdir(level, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		if err := inheritCpuset(parent, level); err != nil {
			return err
		}
	}
	return nil
}

// inheritCpuset gives a v1 cpuset cgroup its parent's CPUs and memory nodes if it has
// none; in other v1 hierarchies the files do not exist and nothing happens.
func inheritCpuset(parent, dir string) error {
	for _, file := range []string{"cpuset.cpus", "cpuset.mems"} {
		own := filepath.Join(dir, file)
		cur, err := os.ReadFile(own)
		if err != nil || strings.TrimSpace(string(cur)) != "" {
			continue // not a cpuset cgroup, or already set
		}
		value, err := os.ReadFile(filepath.Join(parent, file))
		if err != nil {
			return err
		}
		if err := os.WriteFile(own, value, 0); err != nil {
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
		// A cgroup can read busy for a moment after its last process exited.
		err := os.Remove(dir)
		for try := 0; errors.Is(err, unix.EBUSY) && try < 10; try++ {
			time.Sleep(10 * time.Millisecond)
			err = os.Remove(dir)
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("delete cgroup %s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}

// killCgroupProcs kills the processes in the cgroup at path (in the first hierarchy that
// has it; all list the same processes) and waits, up to ctx, until it is empty.
func killCgroupProcs(ctx context.Context, path string) error {
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	for _, mount := range mounts {
		procs := filepath.Join(mount, filepath.Clean("/"+path), "cgroup.procs")
		for {
			data, err := os.ReadFile(procs)
			if errors.Is(err, os.ErrNotExist) {
				break // not in this hierarchy, or gone
			}
			if err != nil {
				return err
			}
			pids := strings.Fields(string(data))
			if len(pids) == 0 {
				return nil
			}
			for _, p := range pids {
				if pid, err := strconv.Atoi(p); err == nil {
					_ = unix.Kill(pid, unix.SIGKILL)
				}
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return nil
}

// RemoveEmptyCgroup removes the cgroup at path from every hierarchy where it is empty, and
// leaves it where it is still in use. `skiff reset` removes with it the default cgroup
// parent of pods that name none (Config.CgroupParent), which runc and the server create
// and nothing else removes.
func RemoveEmptyCgroup(path string) error {
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	for _, mount := range mounts {
		dir := filepath.Join(mount, filepath.Clean("/"+path))
		if dir == mount {
			continue
		}
		err := os.Remove(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.EBUSY) && !errors.Is(err, unix.ENOTEMPTY) {
			return fmt.Errorf("remove cgroup %s: %w", dir, err)
		}
	}
	return nil
}
