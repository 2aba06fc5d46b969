package cri

import (
	"context"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// PodSandboxStatus reports one sandbox.
func (s *service) PodSandboxStatus(ctx context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	sb, err := s.store.sandbox(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	st := sandboxStatus(sb)
	resp := &runtimeapi.PodSandboxStatusResponse{Status: st}
	if req.GetVerbose() {
		resp.Info = map[string]string{"info": fmt.Sprintf(`{"netns":%q,"cgroupsPath":%q}`, sb.meta.NetnsPath, sb.meta.CgroupsPath)}
	}
	return resp, nil
}

// sandboxStatus builds the CRI status of a sandbox.
func sandboxStatus(sb *sandbox) *runtimeapi.PodSandboxStatus {
	cfg := sb.meta.config
	st := &runtimeapi.PodSandboxStatus{
		Id:          sb.meta.ID,
		Metadata:    cfg.GetMetadata(),
		State:       sb.State(),
		CreatedAt:   sb.meta.CreatedAt,
		Network:     &runtimeapi.PodSandboxNetworkStatus{},
		Labels:      cfg.GetLabels(),
		Annotations: cfg.GetAnnotations(),
		Linux: &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{
			Options: cfg.GetLinux().GetSecurityContext().GetNamespaceOptions(),
		}},
	}
	if len(sb.meta.IPs) > 0 {
		st.Network.Ip = sb.meta.IPs[0]
		for _, ip := range sb.meta.IPs[1:] {
			st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtimeapi.PodIP{Ip: ip})
		}
	}
	return st
}
