package cri

import (
	"context"
	"errors"
	"fmt"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// StopPodSandbox stops every container of the sandbox and its pause container, tears
// down the pod network and releases the namespaces. Stopping an unknown or stopped sandbox succeeds.
func (s *service) StopPodSandbox(ctx context.Context, req *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	ctx = s.ns(ctx)
	sb, err := s.store.sandbox(req.GetPodSandboxId())
	if errdefs.IsNotFound(err) {
		return &runtimeapi.StopPodSandboxResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := s.stopSandbox(ctx, sb); err != nil {
		return nil, err
	}
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

func (s *service) stopSandbox(ctx context.Context, sb *sandbox) error {
	for _, c := range s.store.containersOf(sb.meta.ID) {
		if err := s.stopContainer(ctx, c, 0); err != nil {
			return fmt.Errorf("stop container %s of sandbox %s: %w", c.meta.ID, sb.meta.ID, err)
		}
	}
	if sb.meta.Pinned {
		return s.stopPinnedSandbox(ctx, sb)
	}
	// The pod network comes down while the pause task dies: CNI DEL needs the netns, which
	// the bind mount holds, not the pause process.
	detached := make(chan error, 1)
	go func() { detached <- s.detachPodNetwork(ctx, sb) }()
	if err := errors.Join(s.stopPause(ctx, sb), <-detached); err != nil {
		return err
	}
	if err := s.releaseSandboxState(ctx, sb.meta.ID); err != nil {
		return err
	}
	sb.setState(runtimeapi.PodSandboxState_SANDBOX_NOTREADY)
	return nil
}

// stopPinnedSandbox tears down the network, the PID namespace holder and the namespace
// pins of a sandbox without a pause container. Its stop is published by the holder's
// exit, or here when it has none.
func (s *service) stopPinnedSandbox(ctx context.Context, sb *sandbox) error {
	detached := make(chan error, 1)
	go func() { detached <- s.detachPodNetwork(ctx, sb) }()
	if err := errors.Join(s.stopPIDHolder(ctx, sb), <-detached); err != nil {
		return err
	}
	if err := s.releaseSandboxState(ctx, sb.meta.ID); err != nil {
		return err
	}
	sb.mu.Lock()
	wasReady := sb.state == runtimeapi.PodSandboxState_SANDBOX_READY
	sb.state = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	sb.mu.Unlock()
	if wasReady {
		s.sandboxEvent(sb, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT)
	}
	return nil
}

// detachPodNetwork runs CNI DEL for the sandbox and removes its netns, once: the
// RemovePodSandbox that follows a StopPodSandbox does not run the plugins again. (After
// a restart it does, which CNI allows.)
func (s *service) detachPodNetwork(ctx context.Context, sb *sandbox) error {
	sb.mu.Lock()
	down := sb.networkDown
	sb.mu.Unlock()
	if down || sb.meta.NetnsPath == "" || s.cfg.Network == nil {
		return nil
	}
	if err := s.cfg.Network.Detach(ctx, podOf(&sb.meta)); err != nil {
		return fmt.Errorf("tear down pod network of sandbox %s: %w", sb.meta.ID, err)
	}
	if err := s.cfg.Network.RemoveNetns(sb.meta.NetnsPath); err != nil {
		return fmt.Errorf("remove network namespace of sandbox %s: %w", sb.meta.ID, err)
	}
	sb.mu.Lock()
	sb.networkDown = true
	sb.mu.Unlock()
	return nil
}
