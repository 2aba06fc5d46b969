package cri

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

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

// removeContainer stops c and deletes it. When its exited task is still being deleted
// (runc delete, which StopContainer does not wait for), the container is marked as being
// removed (a file under RootDir) and gone from the CRI's view at once, and its record and
// snapshot follow in the background; a server that restarts meanwhile finishes the job
// (recover).
func (s *service) removeContainer(ctx context.Context, c *container) error {
	if err := s.stopContainer(ctx, c, 0); err != nil {
		return err
	}
	c.mu.Lock()
	deleted := c.taskDeleted
	c.mu.Unlock()
	// Image volumes go before the call returns: they hold the image's content, which a
	// RemoveImage that follows may expect to be free.
	volumes := hasImageVolumes(c.meta.config)
	if deleted == nil || isClosed(deleted) || volumes {
		if deleted != nil {
			select {
			case <-deleted:
			case <-ctx.Done():
				return fmt.Errorf("wait for the task of container %s to be deleted: %w", c.meta.ID, ctx.Err())
			}
		}
		if err := s.deleteContainerRecord(ctx, c.meta.ID, volumes); err != nil {
			return err
		}
		s.forgetContainer(ctx, c)
		return nil
	}
	if err := s.markRemoving(c.meta.ID); err != nil {
		return err
	}
	s.forgetContainer(ctx, c)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-deleted:
		case <-s.lifetime.Done():
			return // the next server finishes the removal
		}
		ctx, cancel := s.cleanupContext()
		defer cancel()
		if err := s.deleteContainerRecord(ctx, c.meta.ID, false); err != nil {
			klog.FromContext(ctx).Error(err, "Finish removing container", "containerID", c.meta.ID)
			return // the mark stays: the next server tries again
		}
		s.unmarkRemoving(ctx, c.meta.ID)
	}()
	return nil
}

// forgetContainer drops a removed container from the store and says so.
func (s *service) forgetContainer(ctx context.Context, c *container) {
	s.store.deleteContainer(c.meta.ID)
	s.containerEvent(c, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT)
	klog.FromContext(ctx).V(2).Info("Removed container", "containerID", c.meta.ID)
}

// deleteContainerRecord deletes a container's task (if any is left), record and snapshot
// from containerd, and its image volumes if it may have any.
func (s *service) deleteContainerRecord(ctx context.Context, id string, imageVolumes bool) error {
	cc, err := s.client.LoadContainer(ctx, id)
	if err == nil {
		if task, err := cc.Task(ctx, nil); err == nil {
			_, _ = task.Delete(ctx, containerd.WithProcessKill)
		}
		err = cc.Delete(ctx, containerd.WithSnapshotCleanup)
	}
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete container %s: %w", id, err)
	}
	if !imageVolumes {
		return nil
	}
	if err := s.removeImageVolumes(ctx, id); err != nil {
		return fmt.Errorf("delete container %s: %w", id, err)
	}
	return nil
}

// hasImageVolumes reports whether a container mounts an image.
func hasImageVolumes(cfg *runtimeapi.ContainerConfig) bool {
	for _, m := range cfg.GetMounts() {
		if m.GetImage().GetImage() != "" {
			return true
		}
	}
	return false
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// removingDir holds an empty file per container whose removal is under way.
func (s *service) removingDir() string { return filepath.Join(s.cfg.RootDir, "removing") }

// markRemoving records that container id is being removed. The file is not synced: it
// only has to outlive the server process, whose crash leaves the page cache alone; after
// a power loss the container comes back as exited, and kubelet removes it again.
func (s *service) markRemoving(id string) error {
	if err := os.MkdirAll(s.removingDir(), 0o700); err != nil {
		return fmt.Errorf("mark container %s as being removed: %w", id, err)
	}
	if err := os.WriteFile(filepath.Join(s.removingDir(), id), nil, 0o600); err != nil {
		return fmt.Errorf("mark container %s as being removed: %w", id, err)
	}
	return nil
}

func (s *service) unmarkRemoving(ctx context.Context, id string) {
	if err := os.Remove(filepath.Join(s.removingDir(), id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		klog.FromContext(ctx).Error(err, "Unmark a removed container", "containerID", id)
	}
}

// finishRemovals deletes the containers whose removal a stopped server left under way,
// and returns their IDs, which recover then skips.
func (s *service) finishRemovals(ctx context.Context) map[string]bool {
	entries, err := os.ReadDir(s.removingDir())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		klog.FromContext(ctx).Error(err, "List containers being removed")
	}
	removing := map[string]bool{}
	for _, e := range entries {
		id := e.Name()
		removing[id] = true
		if err := s.deleteContainerRecord(ctx, id, true); err != nil {
			klog.FromContext(ctx).Error(err, "Finish removing container", "containerID", id)
			continue
		}
		s.unmarkRemoving(ctx, id)
	}
	return removing
}
