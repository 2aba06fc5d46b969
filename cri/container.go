package cri

import (
	"context"
	"fmt"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/typeurl/v2"
)

// Exit codes and reasons as the kubelet expects them.
const (
	startErrorExitCode = 128
	reasonCompleted    = "Completed"
	reasonError        = "Error"
	reasonOOMKilled    = "OOMKilled"
	reasonStartError   = "StartError"
	reasonUnknown      = "Unknown"
	unknownExitCode    = 255
)

// saveStatus persists the container's status extension.
func (s *service) saveStatus(ctx context.Context, c *container) error {
	c.persistMu.Lock()
	defer c.persistMu.Unlock()
	return s.persistStatus(ctx, c, c.Status())
}

// persistStatus writes st as the container's status extension.
func (s *service) persistStatus(ctx context.Context, c *container, st containerStatus) error {
	ext, err := jsonAny("ContainerStatus", st)
	if err != nil {
		return err
	}
	_, err = s.client.ContainerService().Update(ctx, containers.Container{
		ID:         c.meta.ID,
		Extensions: map[string]typeurl.Any{extStatus: ext},
	}, "extensions."+extStatus)
	if err != nil {
		return fmt.Errorf("save status of container %s: %w", c.meta.ID, err)
	}
	return nil
}
