package cri

import (
	"context"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListContainers lists containers matching the filter.
func (s *service) ListContainers(ctx context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	f := req.GetFilter()
	resp := &runtimeapi.ListContainersResponse{}
	for _, c := range s.store.listContainers() {
		st := c.Status().State
		if st == runtimeapi.ContainerState_CONTAINER_UNKNOWN {
			st = runtimeapi.ContainerState_CONTAINER_CREATED
		}
		cfg := c.meta.config
		switch {
		case f.GetId() != "" && !strings.HasPrefix(c.meta.ID, f.GetId()),
			f.GetPodSandboxId() != "" && !strings.HasPrefix(c.meta.SandboxID, f.GetPodSandboxId()),
			f.GetState() != nil && f.GetState().GetState() != st,
			!labelsMatch(cfg.GetLabels(), f.GetLabelSelector()):
			continue
		}
		resp.Containers = append(resp.Containers, &runtimeapi.Container{
			Id:           c.meta.ID,
			PodSandboxId: c.meta.SandboxID,
			Metadata:     cfg.GetMetadata(),
			Image:        cfg.GetImage(),
			ImageRef:     c.meta.ImageID,
			ImageId:      c.meta.ImageID,
			State:        st,
			CreatedAt:    c.meta.CreatedAt,
			Labels:       cfg.GetLabels(),
			Annotations:  cfg.GetAnnotations(),
		})
	}
	return resp, nil
}
