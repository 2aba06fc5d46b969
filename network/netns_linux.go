package network

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// CreateNetns creates a new network namespace that outlives every process in it, the way
// `ip netns add` does: it is bind-mounted on NetnsDir/<id>. It returns that path.
func (m *Manager) CreateNetns(id string) (string, error) {
	if id == "" || strings.ContainsAny(id, "/\x00") || id == "." || id == ".." {
		return "", fmt.Errorf("create netns: invalid id %q", id)
	}
	if err := os.MkdirAll(m.cfg.NetnsDir, 0o755); err != nil {
		return "", fmt.Errorf("create netns dir: %w", err)
	}
	path := filepath.Join(m.cfg.NetnsDir, id)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return "", fmt.Errorf("create netns %s: %w", path, err)
	}
	f.Close()
	if err := bindNewNetns(path); err != nil {
		os.Remove(path)
		return "", fmt.Errorf("create netns %s: %w", path, err)
	}
	return path, nil
}

// bindNewNetns unshares a fresh network namespace on a dedicated OS thread and bind-mounts it
// on target. Namespaces belong to threads, so the work happens on a locked thread, and if the
// thread cannot be moved back to the host namespace it is left locked so that the Go runtime
// destroys it instead of reusing it for other goroutines.
func bindNewNetns(target string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		restored, err := unshareAndBind(target)
		if restored {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

func unshareAndBind(target string) (restored bool, err error) {
	self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
	orig, err := os.Open(self)
	if err != nil {
		return true, fmt.Errorf("open current netns: %w", err)
	}
	defer orig.Close()

	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return true, fmt.Errorf("unshare: %w", err)
	}
	bindErr := unix.Mount(self, target, "none", unix.MS_BIND, "")
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		return false, errors.Join(bindErr, fmt.Errorf("return to host netns: %w", err))
	}
	if bindErr != nil {
		return true, fmt.Errorf("bind mount: %w", bindErr)
	}
	return true, nil
}

// RemoveNetns unmounts and removes a netns created by CreateNetns. It is idempotent: a path
// that is already unmounted or gone is not an error. Paths outside NetnsDir are refused.
func (m *Manager) RemoveNetns(path string) error {
	if path == "" {
		return nil
	}
	if filepath.Dir(filepath.Clean(path)) != filepath.Clean(m.cfg.NetnsDir) {
		return fmt.Errorf("remove netns: %s is not in %s", path, m.cfg.NetnsDir)
	}
	// MNT_DETACH: a process still inside (e.g. a CNI plugin) keeps the namespace alive
	// until it leaves; the name goes away now.
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil &&
		!errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount netns %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove netns %s: %w", path, err)
	}
	return nil
}

// isNetns reports whether path is a mounted network namespace. CNI plugins treat a missing
// path as "already gone" but fail on a plain file, so DEL passes no netns in that case.
func isNetns(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC || st.Type == unix.PROC_SUPER_MAGIC
}

// InNetns runs fn on a locked OS thread that has joined the network namespace at path.
// Sockets created by fn stay in that namespace after fn returns.
func InNetns(path string, fn func() error) error {
	ns, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", path, err)
	}
	defer ns.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		orig, err := os.Open(self)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns %s: %w", path, err)
			return
		}
		fnErr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: it dies with this goroutine.
			errc <- errors.Join(fnErr, fmt.Errorf("return to host netns: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- fnErr
	}()
	return <-errc
}
