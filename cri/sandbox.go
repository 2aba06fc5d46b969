package cri

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func newID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// sandboxName is the unique name key of a sandbox, as containerd's CRI forms it.
func sandboxName(md *runtimeapi.PodSandboxMetadata) string {
	return strings.Join([]string{md.GetName(), md.GetNamespace(), md.GetUid(), strconv.FormatUint(uint64(md.GetAttempt()), 10)}, "_")
}

func (s *service) sandboxDir(id string) string { return filepath.Join(s.cfg.RootDir, "sandboxes", id) }

// sandboxStateDir holds what a sandbox has while it is ready (its /dev/shm tmpfs and
// namespace pins). It is under StateDir, which a reboot empties.
func (s *service) sandboxStateDir(id string) string {
	return filepath.Join(s.cfg.StateDir, "sandboxes", id)
}

// sandboxShm is the tmpfs the pod's containers share as /dev/shm.
func (s *service) sandboxShm(id string) string { return filepath.Join(s.sandboxStateDir(id), "shm") }

// sandboxPins are where a sandbox without a pause container pins its namespaces.
func (s *service) sandboxPins(id string) pinnedNamespaces {
	dir := s.sandboxStateDir(id)
	return pinnedNamespaces{IPC: filepath.Join(dir, "ipc"), UTS: filepath.Join(dir, "uts")}
}

// sharesPID reports whether a sandbox's containers share one PID namespace (the CRI's
// default; kubelet asks for it with shareProcessNamespace), which needs a live init.
func sharesPID(cfg *runtimeapi.PodSandboxConfig) bool {
	return cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetPid() == runtimeapi.NamespaceMode_POD
}

// sandboxShmSize is the pod's /dev/shm size, as containerd's CRI sizes it.
const sandboxShmSize = "65536k"

func hostIPC(cfg *runtimeapi.PodSandboxConfig) bool {
	return cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetIpc() == runtimeapi.NamespaceMode_NODE
}

// mountSandboxShm mounts the pod's shared /dev/shm (POSIX shared memory follows the
// IPC namespace, so all containers of a pod must see the same tmpfs).
func (s *service) mountSandboxShm(id string) error {
	shm := s.sandboxShm(id)
	if err := os.MkdirAll(shm, 0o700); err != nil {
		return fmt.Errorf("create sandbox shm: %w", err)
	}
	if err := syscall.Mount("shm", shm, "tmpfs", syscall.MS_NOEXEC|syscall.MS_NOSUID|syscall.MS_NODEV,
		"mode=1777,size="+sandboxShmSize); err != nil {
		return fmt.Errorf("mount sandbox shm: %w", err)
	}
	return nil
}

// releaseSandboxState unmounts a sandbox's namespace pins and /dev/shm and removes its
// state directory. It is idempotent.
//
// Everything is released that can be; the directory goes only when all of it went, so
// that a retry still finds what is left (a holder's record, a pin).
func (s *service) releaseSandboxState(ctx context.Context, id string) error {
	errs := []error{s.killLostHolder(ctx, id), unpinNamespaces(s.sandboxPins(id))}
	shm := s.sandboxShm(id)
	if err := syscall.Unmount(shm, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
		errs = append(errs, fmt.Errorf("unmount sandbox shm: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return os.RemoveAll(s.sandboxStateDir(id))
}

// shmMount is the /dev/shm mount of the sandbox's containers.
func (s *service) shmMount(sb *sandboxMeta) specs.Mount {
	src := s.sandboxShm(sb.ID)
	if hostIPC(sb.config) {
		src = "/dev/shm"
	}
	return specs.Mount{Destination: "/dev/shm", Source: src, Type: "bind", Options: []string{"rbind", "rprivate", "rw"}}
}

func hostNetwork(cfg *runtimeapi.PodSandboxConfig) bool {
	return cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() == runtimeapi.NamespaceMode_NODE
}

func (s *service) runcOptions() *runcoptions.Options {
	// Our own runc root keeps two runtimes on one host from sharing state.
	return &runcoptions.Options{Root: filepath.Join(s.cfg.StateDir, "runc")}
}

func (s *service) fifoDir() string { return filepath.Join(s.cfg.StateDir, "io") }
