package cri

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// A pod whose containers share one PID namespace needs a process to be that namespace's
// init for as long as the pod runs. containerd's CRI makes it a pause container, which
// costs a shim and two runc runs; skiff starts the pause binary itself, in a new PID
// namespace, as the nobody user, in the sandbox's cgroup, in a session of its own so
// that nothing aimed at skiff's process group reaches it. It does not die with skiff: a
// restarted server finds it again by its PID and its namespace's inode (meta.Holder).

// pidHolder identifies a sandbox's PID namespace holder across restarts.
type pidHolder struct {
	PID int
	// NS is the inode of the PID namespace it was started in: a process found at PID
	// later is the holder only if it is still in that namespace.
	NS uint64
	// Start is its start time (field 22 of /proc/<pid>/stat, in clock ticks since boot),
	// which tells it from a later process that got the same PID.
	Start uint64 `json:",omitempty"`
	// Cgroup is the cgroup it was moved into.
	Cgroup string
}

func (s *service) holderFile(id string) string {
	return filepath.Join(s.sandboxStateDir(id), "pid-holder.json")
}

// openHolder returns a pidfd of h's process if it still runs.
func openHolder(h *pidHolder) (int, bool) {
	fd, err := unix.PidfdOpen(h.PID, 0)
	if err != nil {
		return -1, false
	}
	// The pidfd pins the process; its namespace and start time say it is the holder we
	// started, and a null signal that it has not exited since.
	ns, err := pidNamespaceOf(h.PID)
	start, startErr := processStart(h.PID)
	if err != nil || ns != h.NS || startErr != nil || (h.Start != 0 && start != h.Start) ||
		unix.PidfdSendSignal(fd, 0, nil, 0) != nil {
		unix.Close(fd)
		return -1, false
	}
	return fd, true
}

// processStart reads a process's start time, in clock ticks since boot.
func processStart(pid int) (uint64, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: count from its end.
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	fields := strings.Fields(string(stat[end+1:]))
	if len(fields) < 20 { // fields 3 to 22
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

// killLostHolder kills the holder recorded in a sandbox's state directory, if it still
// runs, and removes its cgroup once it is gone. It is for sandboxes whose holder nobody
// watches: lost in a crash, or whose server restarted before stopping them.
func (s *service) killLostHolder(ctx context.Context, id string) error {
	var h pidHolder
	if err := readJSONFile(s.holderFile(id), &h); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	if h.PID == 0 {
		// Recorded before it was started: whatever is in its cgroup is it.
		if err := killCgroupProcs(ctx, h.Cgroup); err != nil {
			return fmt.Errorf("kill the PID namespace holder of sandbox %s: %w", id, err)
		}
	} else if fd, ok := openHolder(&h); ok {
		err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		if err == nil {
			err = waitPidfd(ctx, fd)
		}
		unix.Close(fd)
		if err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("kill the PID namespace holder %d of sandbox %s: %w", h.PID, id, err)
		}
	}
	return deleteCgroup(h.Cgroup)
}

// waitPidfd waits until the process of a pidfd has exited.
func waitPidfd(ctx context.Context, fd int) error {
	for ctx.Err() == nil {
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 100)
		if n > 0 {
			return nil
		}
		if err != nil && !errors.Is(err, unix.EINTR) {
			return err
		}
	}
	return ctx.Err()
}

// pauseUID and pauseGID are what the holder runs as (pauseUser of the pause image).
const pauseUID, pauseGID = 65535, 65535

// installPauseBinary writes the embedded pause binary where the holders are started from.
func (s *service) installPauseBinary() error {
	bin, err := pauseFS.ReadFile(pauseBinaryPath)
	if err != nil {
		return fmt.Errorf("pause binary missing from the build (run cri/pause/build.sh before go build): %w", err)
	}
	dst := s.pauseBinary()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("install pause binary: %w", err)
	}
	// The nobody user must be able to look it up once chrooted there.
	if err := os.Chmod(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("install pause binary: %w", err)
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, bin, 0o555); err != nil {
		return fmt.Errorf("install pause binary: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("install pause binary: %w", err)
	}
	return nil
}

// pauseRoot is the holder's root directory: only the pause binary, so the holder, PID 1
// of the pod, shows the pod's processes nothing of the host through /proc/1/root.
func (s *service) pauseRoot() string { return filepath.Join(s.cfg.RootDir, "pause-root") }

func (s *service) pauseBinary() string { return filepath.Join(s.pauseRoot(), "pause") }

// startPIDHolder starts sb's PID namespace holder and watches it; sb is ready once it runs.
func (s *service) startPIDHolder(ctx context.Context, sb *sandbox) (retErr error) {
	// Chrooted (as root, before the user changes) into a directory holding only the
	// binary, so the nobody user needs no search right above RootDir. pause makes
	// itself undumpable, which closes /proc/1/ns and ptrace to the pod's processes.
	// Its cgroup is recorded first: a holder a crash leaves unrecorded is found in it.
	if err := writeJSONFile(s.holderFile(sb.meta.ID), &pidHolder{Cgroup: sb.meta.CgroupsPath}); err != nil {
		return err
	}
	cmd := &exec.Cmd{Path: "/pause", Args: []string{"/pause"}, Dir: "/", Env: []string{}}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWPID,
		Chroot:     s.pauseRoot(),
		Setsid:     true,
		Credential: &syscall.Credential{Uid: pauseUID, Gid: pauseGID, Groups: []uint32{}},
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the pod's PID namespace holder %s: %w", s.pauseBinary(), err)
	}
	pid := cmd.Process.Pid
	defer func() {
		if retErr != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			_ = deleteCgroup(sb.meta.CgroupsPath)
		}
	}()
	if err := addToCgroup(sb.meta.CgroupsPath, pid); err != nil {
		return err
	}
	score := strconv.Itoa(s.oom.clamp(sandboxOOMScoreAdj))
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid), []byte(score), 0); err != nil {
		return fmt.Errorf("set the OOM score of the pod's PID namespace holder: %w", err)
	}
	ns, err := pidNamespaceOf(pid)
	if err != nil {
		return err
	}
	start, err := processStart(pid)
	if err != nil {
		return fmt.Errorf("start time of the pod's PID namespace holder: %w", err)
	}
	sb.meta.Holder = &pidHolder{PID: pid, NS: ns, Start: start, Cgroup: sb.meta.CgroupsPath}
	// Until the sandbox's record is in containerd, this file is how a restarted server
	// finds a holder whose RunPodSandbox a crash cut short (releaseSandboxState).
	if err := writeJSONFile(s.holderFile(sb.meta.ID), sb.meta.Holder); err != nil {
		return err
	}
	// A pidfd, taken while the child cannot have been reaped: signals sent through it
	// reach the holder or nothing, never a process that reuses its PID later.
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("pidfd of the pod's PID namespace holder: %w", err)
	}
	sb.pid, sb.exited, sb.holderFD = uint32(pid), make(chan struct{}), os.NewFile(uintptr(fd), "pidfd")
	s.watchHolder(sb, func() { _ = cmd.Wait() })
	return nil
}

// recoverPIDHolder finds a restarted server's sandbox's holder again; it reports whether
// the holder still runs (and is now watched).
func (s *service) recoverPIDHolder(sb *sandbox) bool {
	h := sb.meta.Holder
	fd, ok := openHolder(h)
	if !ok {
		return false
	}
	sb.pid, sb.exited, sb.holderFD = uint32(h.PID), make(chan struct{}), os.NewFile(uintptr(fd), "pidfd")
	s.watchHolder(sb, func() {
		// Not our child any more: its pidfd turns readable when it exits.
		_ = waitPidfd(s.lifetime, fd)
	})
	return true
}

// watchHolder runs wait until the holder has exited, then marks sb not ready, as
// watchSandbox does for a pause container, and removes the holder's cgroup.
func (s *service) watchHolder(sb *sandbox, wait func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		done := make(chan struct{})
		go func() { wait(); close(done) }()
		select {
		case <-s.lifetime.Done():
		case <-done:
		}
		if s.lifetime.Err() != nil { // the holder outlives the server
			sb.mu.Lock()
			_ = sb.holderFD.Close()
			sb.holderFD = nil
			sb.mu.Unlock()
			return
		}
		if err := deleteCgroup(sb.meta.CgroupsPath); err != nil {
			klog.FromContext(s.lifetime).Error(err, "Remove the cgroup of a PID namespace holder", "podSandboxID", sb.meta.ID)
		}
		sb.mu.Lock()
		wasReady := sb.state == runtimeapi.PodSandboxState_SANDBOX_READY
		sb.state = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
		exited := sb.exited
		_ = sb.holderFD.Close()
		sb.holderFD = nil
		sb.mu.Unlock()
		if wasReady { // not for a RunPodSandbox that failed after starting it
			s.sandboxEvent(sb, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT)
		}
		close(exited)
	}()
}

// stopPIDHolder kills sb's holder, if it has one, and waits until its exit is recorded.
func (s *service) stopPIDHolder(ctx context.Context, sb *sandbox) error {
	sb.mu.Lock()
	pid, exited := sb.pid, sb.exited
	var err error
	if sb.holderFD != nil { // nil once the watcher saw the exit
		err = unix.PidfdSendSignal(int(sb.holderFD.Fd()), unix.SIGKILL, nil, 0)
	}
	sb.mu.Unlock()
	if sb.meta.Holder == nil || exited == nil {
		return nil
	}
	if err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("kill the pod's PID namespace holder %d: %w", pid, err)
	}
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.lifetime.Done(): // no watcher will see the exit; the next server will
		return fmt.Errorf("kill the pod's PID namespace holder %d: the server is stopping", pid)
	}
}

func pidNamespaceOf(pid int) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/pid", pid), &st); err != nil {
		return 0, fmt.Errorf("PID namespace of process %d: %w", pid, err)
	}
	return st.Ino, nil
}

func writeJSONFile(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func readJSONFile(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}
