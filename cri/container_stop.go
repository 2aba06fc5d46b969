package cri

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/moby/sys/signal"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// StopContainer signals the container (its stop signal, then SIGKILL after the
// timeout). Stopping an unknown or exited container succeeds.
func (s *service) StopContainer(ctx context.Context, req *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	ctx = s.ns(ctx)
	c, err := s.store.container(req.GetContainerId())
	if errdefs.IsNotFound(err) {
		return &runtimeapi.StopContainerResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := s.stopContainer(ctx, c, time.Duration(req.GetTimeout())*time.Second); err != nil {
		return nil, err
	}
	return &runtimeapi.StopContainerResponse{}, nil
}

func (s *service) stopContainer(ctx context.Context, c *container, timeout time.Duration) error {
	c.mu.Lock()
	state, exited, task := c.status.State, c.exited, c.task
	c.mu.Unlock()
	if state != runtimeapi.ContainerState_CONTAINER_RUNNING || exited == nil {
		return nil
	}
	if task == nil {
		<-exited // it exited: the watcher is recording that
		return nil
	}
	if timeout > 0 {
		sig := syscall.SIGTERM
		if name := stopSignalName(c); name != "" {
			if parsed, err := signal.ParseSignal(name); err == nil {
				sig = parsed
			}
		}
		if err := task.Kill(ctx, sig); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("signal container: %w", err)
		}
		select {
		case <-exited:
			return nil
		case <-time.After(timeout):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := task.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("kill container: %w", err)
	}
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for container %s to exit: %w", c.meta.ID, ctx.Err())
	}
}

// stopSignalName prefers the CRI config's stop signal over the image's.
func stopSignalName(c *container) string {
	if sig := c.meta.config.GetStopSignal(); sig != runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT {
		return strings.TrimPrefix(sig.String(), "SIGNAL_")
	}
	return c.meta.StopSignal
}
