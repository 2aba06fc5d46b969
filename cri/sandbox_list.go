package cri

import (
	"context"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListPodSandbox lists sandboxes matching the filter (ID prefix, state, labels).
func (s *service) ListPodSandbox(ctx context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	f := req.GetFilter()
	resp := &runtimeapi.ListPodSandboxResponse{}
	for _, sb := range s.store.listSandboxes() {
		cfg := sb.meta.config
		state := sb.State()
		if f.GetId() != "" && !strings.HasPrefix(sb.meta.ID, f.GetId()) {
			continue
		}
		if f.GetState() != nil && f.GetState().GetState() != state {
			continue
		}
		if !labelsMatch(cfg.GetLabels(), f.GetLabelSelector()) {
			continue
		}
		resp.Items = append(resp.Items, &runtimeapi.PodSandbox{
			Id:          sb.meta.ID,
			Metadata:    cfg.GetMetadata(),
			State:       state,
			CreatedAt:   sb.meta.CreatedAt,
			Labels:      cfg.GetLabels(),
			Annotations: cfg.GetAnnotations(),
		})
	}
	return resp, nil
}

func labelsMatch(labels, selector map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}
