package cri

import (
	"context"
	"fmt"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// RemoveContainer stops the container if needed and deletes it with its snapshot.
// Removing an unknown container succeeds.
func (s *service) RemoveContainer(ctx context.Context, req *runtimeapi.RemoveContainerRequest) (*runtimeapi.RemoveContainerResponse, error) {
	ctx = s.ns(ctx)
	c, err := s.store.container(req.GetContainerId())
	if errdefs.IsNotFound(err) {
		return &runtimeapi.RemoveContainerResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := s.removeContainer(ctx, c); err != nil {
		return nil, err
	}
	return &runtimeapi.RemoveContainerResponse{}, nil
}

func (s *service) removeContainer(ctx context.Context, c *container) error {
	if err := s.stopContainer(ctx, c, 0); err != nil {
		return err
	}
	c.mu.Lock()
	deleted := c.taskDeleted
	c.mu.Unlock()
	if deleted != nil {
		select {
		case <-deleted:
		case <-ctx.Done():
			return fmt.Errorf("wait for the task of container %s to be deleted: %w", c.meta.ID, ctx.Err())
		}
	}
	cc, err := s.client.LoadContainer(ctx, c.meta.ID)
	if err == nil {
		if task, err := cc.Task(ctx, nil); err == nil {
			_, _ = task.Delete(ctx, containerd.WithProcessKill)
		}
		err = cc.Delete(ctx, containerd.WithSnapshotCleanup)
	}
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete container %s: %w", c.meta.ID, err)
	}
	if err := s.removeImageVolumes(ctx, c.meta.ID); err != nil {
		return fmt.Errorf("delete container %s: %w", c.meta.ID, err)
	}
	s.store.deleteContainer(c.meta.ID)
	s.containerEvent(c, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT)
	klog.FromContext(ctx).V(2).Info("Removed container", "containerID", c.meta.ID)
	return nil
}
