package cri

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// A sandbox without a pause container keeps its namespaces alive the way `ip netns add`
// keeps a network namespace: each is bind-mounted on a file in the sandbox's state
// directory, and its containers join them by path. The mounts go on a stop, and with
// the state directory on a reboot, which is also when a pause process would have gone.

// pinnedNamespaces are the paths of a sandbox's pinned IPC and UTS namespaces; an empty
// path means the host's.
type pinnedNamespaces struct {
	IPC, UTS string
}

// pinNamespaces creates fresh IPC and/or UTS namespaces for a sandbox, gives the UTS one
// hostname and the namespaced sysctls that belong to them, and bind-mounts each on a
// file in dir. It creates nothing for a namespace whose path is empty in want. On error
// nothing is left mounted.
func pinNamespaces(dir string, want pinnedNamespaces, hostname string, sysctls map[string]string) error {
	var flags int
	if want.IPC != "" {
		flags |= unix.CLONE_NEWIPC
	}
	if want.UTS != "" {
		flags |= unix.CLONE_NEWUTS
	}
	if flags == 0 {
		return nil
	}
	for _, p := range []string{want.IPC, want.UTS} {
		if p == "" {
			continue
		}
		if filepath.Dir(p) != dir {
			return fmt.Errorf("namespace pin %s is not in %s", p, dir)
		}
		f, err := os.OpenFile(p, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
		if err != nil {
			return fmt.Errorf("create namespace pin: %w", err)
		}
		f.Close()
	}
	errc := make(chan error, 1)
	go func() {
		// Namespaces belong to threads: the work happens on a locked one, which goes
		// back to the host's namespaces afterwards. If it cannot, it stays locked, and
		// the Go runtime ends it with this goroutine rather than run others in them.
		runtime.LockOSThread()
		restore, err := enterNew(flags)
		if err == nil {
			err = pinCurrent(want, hostname, sysctls)
		}
		if restore() {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		return errors.Join(err, unpinNamespaces(want))
	}
	return nil
}

// enterNew moves the calling (locked) thread into new namespaces of flags. restore moves
// it back and reports whether that worked.
func enterNew(flags int) (restore func() bool, err error) {
	self := fmt.Sprintf("/proc/self/task/%d/ns/", unix.Gettid())
	var orig []*os.File
	closeAll := func() {
		for _, f := range orig {
			f.Close()
		}
	}
	for _, kind := range []struct {
		flag int
		name string
	}{{unix.CLONE_NEWIPC, "ipc"}, {unix.CLONE_NEWUTS, "uts"}} {
		if flags&kind.flag == 0 {
			continue
		}
		f, err := os.Open(self + kind.name)
		if err != nil {
			closeAll()
			return func() bool { return true }, fmt.Errorf("open the current %s namespace: %w", kind.name, err)
		}
		orig = append(orig, f)
	}
	if err := unix.Unshare(flags); err != nil {
		closeAll()
		return func() bool { return true }, fmt.Errorf("unshare IPC/UTS namespaces: %w", err)
	}
	return func() bool {
		defer closeAll()
		for _, f := range orig {
			if unix.Setns(int(f.Fd()), 0) != nil {
				return false
			}
		}
		return true
	}, nil
}

// pinCurrent sets up the calling thread's new namespaces and bind-mounts them.
func pinCurrent(want pinnedNamespaces, hostname string, sysctls map[string]string) error {
	if want.UTS != "" && hostname != "" {
		if err := unix.Sethostname([]byte(hostname)); err != nil {
			return fmt.Errorf("set hostname %q: %w", hostname, err)
		}
	}
	for name, value := range sysctls {
		if kind := sysctlNamespace(name); (kind == "ipc" && want.IPC != "") || (kind == "uts" && want.UTS != "") {
			if err := writeSysctl(name, value); err != nil {
				return err
			}
		}
	}
	self := fmt.Sprintf("/proc/self/task/%d/ns/", unix.Gettid())
	for ns, target := range map[string]string{"ipc": want.IPC, "uts": want.UTS} {
		if target == "" {
			continue
		}
		if err := unix.Mount(self+ns, target, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind-mount the %s namespace on %s: %w", ns, target, err)
		}
	}
	return nil
}

// unpinNamespaces unmounts and removes the pins in ns; missing ones are not an error.
func unpinNamespaces(ns pinnedNamespaces) error {
	var errs []error
	for _, p := range []string{ns.IPC, ns.UTS} {
		if p == "" {
			continue
		}
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount namespace pin %s: %w", p, err))
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove namespace pin %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// sysctlNamespace names the namespace a sysctl belongs to ("ipc", "uts", "net"), or ""
// for one that is not namespaced and so is the host's, as runc classifies them.
func sysctlNamespace(name string) string {
	name = strings.ReplaceAll(name, "/", ".")
	switch {
	case strings.HasPrefix(name, "net."):
		return "net"
	case strings.HasPrefix(name, "fs.mqueue."):
		return "ipc"
	case name == "kernel.domainname" || name == "kernel.hostname":
		return "uts"
	}
	switch name {
	case "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
		"kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced":
		return "ipc"
	}
	return ""
}

// checkPodSysctls refuses sysctls a sandbox cannot set in its own namespaces: the host's
// own parameters, and those of a namespace the sandbox shares with the host.
func checkPodSysctls(sysctls map[string]string, hostNet, hostIPC bool) error {
	for name := range sysctls {
		kind := sysctlNamespace(name)
		shared := kind == "" || (kind == "net" && hostNet) || (kind == "uts" && hostNet) || (kind == "ipc" && hostIPC)
		if !shared {
			continue
		}
		where := "is not namespaced"
		if kind != "" {
			where = "belongs to the " + kind + " namespace, which this pod shares with the host"
		}
		return fmt.Errorf("config.linux.sysctls[%q] %s: setting it would change the node; drop it from the pod: %w",
			name, where, errdefs.ErrInvalidArgument)
	}
	return nil
}

// writeSysctl sets one kernel parameter in the calling thread's namespaces.
func writeSysctl(name, value string) error {
	rel := name
	if !strings.Contains(name, "/") {
		rel = strings.ReplaceAll(name, ".", "/")
	}
	p := filepath.Join("/proc/sys", filepath.Clean("/"+rel))
	if err := os.WriteFile(p, []byte(value), 0); err != nil {
		return fmt.Errorf("set sysctl %s=%s: %w", name, value, err)
	}
	return nil
}

// isNamespaceMount reports whether path is a bind-mounted namespace.
func isNamespaceMount(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && (st.Type == unix.NSFS_MAGIC || st.Type == unix.PROC_SUPER_MAGIC)
}
