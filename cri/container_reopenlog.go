package cri

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ReopenContainerLog reopens a running container's log file after the kubelet rotated it.
func (s *service) ReopenContainerLog(ctx context.Context, req *runtimeapi.ReopenContainerLogRequest) (*runtimeapi.ReopenContainerLogResponse, error) {
	c, err := s.store.container(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	logs := c.logs
	c.mu.Unlock()
	if logs == nil {
		return nil, fmt.Errorf("container %s is not running: %w", c.meta.ID, errdefs.ErrFailedPrecondition)
	}
	if err := logs.reopen(); err != nil {
		return nil, err
	}
	return &runtimeapi.ReopenContainerLogResponse{}, nil
}
