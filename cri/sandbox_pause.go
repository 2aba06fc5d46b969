package cri

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// sandboxOOMScoreAdj keeps the pause process among the last to be OOM-killed.
const sandboxOOMScoreAdj = -998

// createPause creates the pause container of sb and its task (the shim and `runc create`),
// not yet started.
func (s *service) createPause(ctx context.Context, sb *sandbox, undo *[]func(), timing *steps) (containerd.Container, containerd.Task, error) {
	ci, err := s.findImage(ctx, s.cfg.PauseImage)
	if err != nil {
		return nil, nil, fmt.Errorf("pause image %s: %w", s.cfg.PauseImage, err)
	}
	img := s.imageObject(ci)
	ext, err := jsonAny("SandboxMetadata", sb.meta)
	if err != nil {
		return nil, nil, err
	}
	err = s.newContainerRecord(ctx, sb.meta.ID,
		s.withRootfsSnapshot(sb.meta.ID, ci),
		containerd.WithNewSpec(s.pauseSpecOpts(sb, img)...),
		containerd.WithRuntime(runcRuntimeName, s.runcOptions()),
		containerd.WithContainerLabels(map[string]string{labelKind: kindSandbox}),
		containerd.WithContainerExtension(extMetadata, ext),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("create pause container: %w", err)
	}
	cc, err := s.client.LoadContainer(ctx, sb.meta.ID)
	if err != nil {
		_ = s.deleteSandboxRecord(context.WithoutCancel(ctx), sb)
		return nil, nil, fmt.Errorf("load pause container: %w", err)
	}
	timing.done("pauseContainer")
	*undo = append(*undo, func() {
		_ = cc.Delete(context.WithoutCancel(ctx), containerd.WithSnapshotCleanup)
	})
	task, err := cc.NewTask(ctx, cio.NullIO)
	if err != nil {
		return nil, nil, fmt.Errorf("create pause task: %w", err)
	}
	timing.done("pauseTaskCreate")
	*undo = append(*undo, func() {
		_, _ = task.Delete(context.WithoutCancel(ctx), containerd.WithProcessKill)
	})
	return cc, task, nil
}

// startPause records the sandbox's final metadata (its IPs were not known when the pause
// container was created) on the container while the pause task starts, and marks sb ready.
func (s *service) startPause(ctx context.Context, sb *sandbox, cc containerd.Container, task containerd.Task) error {
	ext, err := jsonAny("SandboxMetadata", sb.meta)
	if err != nil {
		return err
	}
	updated := make(chan error, 1)
	go func() {
		updated <- cc.Update(ctx, func(ctx context.Context, client *containerd.Client, c *containers.Container) error {
			return containerd.WithContainerExtension(extMetadata, ext)(ctx, client, c)
		})
	}()
	exitCh, err := task.Wait(s.ns(s.lifetime))
	if err == nil {
		err = task.Start(ctx)
	}
	if err = errors.Join(err, <-updated); err != nil {
		return fmt.Errorf("start pause task: %w", err)
	}
	sb.state = runtimeapi.PodSandboxState_SANDBOX_READY
	sb.exited = make(chan struct{})
	sb.pid = task.Pid()
	s.watchSandbox(sb, task, exitCh)
	return nil
}

// watchSandbox marks the sandbox NOTREADY and deletes the pause task once it exits.
func (s *service) watchSandbox(sb *sandbox, task containerd.Task, exitCh <-chan containerd.ExitStatus) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-s.lifetime.Done():
			return
		case <-exitCh:
		}
		ctx, cancel := s.cleanupContext()
		if _, err := task.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
			klog.FromContext(ctx).Error(err, "Delete exited pause task", "podSandboxID", sb.meta.ID)
		}
		cancel()
		sb.mu.Lock()
		sb.state = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
		exited := sb.exited
		sb.mu.Unlock()
		// Published before waiters wake, so that STOPPED precedes a DELETED they cause.
		s.sandboxEvent(sb, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT)
		close(exited)
	}()
}

// pauseSpecOpts builds the pause container's OCI spec.
func (s *service) pauseSpecOpts(sb *sandbox, img containerd.Image) []oci.SpecOpts {
	cfg := sb.meta.config
	nsOpts := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	opts := []oci.SpecOpts{
		oci.WithImageConfig(img),
		oci.WithoutRunMount,
		oci.WithRootFSReadonly(),
		oci.WithNoNewPrivileges,
		oci.WithCgroup(sb.meta.CgroupsPath),
		oci.WithAnnotations(map[string]string{
			"io.kubernetes.cri.container-type":    "sandbox",
			"io.kubernetes.cri.sandbox-id":        sb.meta.ID,
			"io.kubernetes.cri.sandbox-name":      cfg.GetMetadata().GetName(),
			"io.kubernetes.cri.sandbox-namespace": cfg.GetMetadata().GetNamespace(),
			"io.kubernetes.cri.sandbox-uid":       cfg.GetMetadata().GetUid(),
		}),
		withOOMScoreAdj(s.oom.clamp(sandboxOOMScoreAdj)),
		oci.WithoutMounts("/dev/shm"),
		oci.WithMounts([]specs.Mount{s.shmMount(&sb.meta)}),
		withSysctls(cfg.GetLinux().GetSysctls()),
		oci.WithCapabilities(nil), // pause needs none
	}
	if hostNetwork(cfg) {
		opts = append(opts, oci.WithHostNamespace(specs.NetworkNamespace), oci.WithHostNamespace(specs.UTSNamespace))
	} else {
		opts = append(opts,
			oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: sb.meta.NetnsPath}),
			oci.WithHostname(cfg.GetHostname()))
	}
	if nsOpts.GetPid() == runtimeapi.NamespaceMode_NODE {
		opts = append(opts, oci.WithHostNamespace(specs.PIDNamespace))
	}
	if nsOpts.GetIpc() == runtimeapi.NamespaceMode_NODE {
		opts = append(opts, oci.WithHostNamespace(specs.IPCNamespace))
	}
	if sc := cfg.GetLinux().GetSecurityContext(); sc.GetRunAsUser() != nil {
		gid := uint32(65535)
		if sc.GetRunAsGroup() != nil {
			gid = uint32(sc.GetRunAsGroup().GetValue())
		}
		opts = append(opts, oci.WithUIDGID(uint32(sc.GetRunAsUser().GetValue()), gid))
	}
	return opts
}

// stopPause kills the pause task and waits until its exit is recorded.
func (s *service) stopPause(ctx context.Context, sb *sandbox) error {
	cc, err := s.client.LoadContainer(ctx, sb.meta.ID)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("load pause container: %w", err)
	}
	task, err := cc.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load pause task: %w", err)
	}
	if err := task.Kill(ctx, syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("kill pause task: %w", err)
	}
	sb.mu.Lock()
	exited := sb.exited
	sb.mu.Unlock()
	if exited != nil {
		select {
		case <-exited:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// No watcher (the pause task was found stopped at recovery): delete it here.
	if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete pause task: %w", err)
	}
	return nil
}
