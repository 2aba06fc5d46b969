package cri

import (
	"context"
	"fmt"
	"os"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// RemovePodSandbox stops the sandbox if needed, removes its containers and all its
// state. Removing an unknown sandbox succeeds.
func (s *service) RemovePodSandbox(ctx context.Context, req *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	ctx = s.ns(ctx)
	sb, err := s.store.sandbox(req.GetPodSandboxId())
	if errdefs.IsNotFound(err) {
		return &runtimeapi.RemovePodSandboxResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := s.stopSandbox(ctx, sb); err != nil {
		return nil, err
	}
	for _, c := range s.store.containersOf(sb.meta.ID) {
		if err := s.removeContainer(ctx, c); err != nil {
			return nil, err
		}
	}
	if err := s.deleteSandboxRecord(ctx, sb); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(s.sandboxDir(sb.meta.ID)); err != nil {
		return nil, fmt.Errorf("remove sandbox directory: %w", err)
	}
	s.store.deleteSandbox(sb.meta.ID)
	s.sandboxEvent(sb, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT)
	klog.FromContext(ctx).V(2).Info("Removed pod sandbox", "podSandboxID", sb.meta.ID)
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

// deleteSandboxRecord deletes the sandbox's containerd container: the pause container
// with its snapshot, or the record of a sandbox without one (no snapshot, one call).
func (s *service) deleteSandboxRecord(ctx context.Context, sb *sandbox) error {
	if sb.meta.Pinned {
		if err := s.client.ContainerService().Delete(ctx, sb.meta.ID); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete sandbox record: %w", err)
		}
		return nil
	}
	cc, err := s.client.LoadContainer(ctx, sb.meta.ID)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load pause container: %w", err)
	}
	if err := cc.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete pause container: %w", err)
	}
	return nil
}
