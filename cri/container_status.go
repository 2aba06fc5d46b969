package cri

import (
	"context"
	"encoding/json"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// ContainerStatus reports one container.
func (s *service) ContainerStatus(ctx context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	ctx = s.ns(ctx)
	c, err := s.store.container(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	st := c.Status()
	resp := &runtimeapi.ContainerStatusResponse{Status: s.containerStatus(ctx, c)}
	if req.GetVerbose() {
		info, _ := json.Marshal(map[string]any{"pid": st.Pid, "sandboxID": c.meta.SandboxID, "imageRef": c.meta.ImageRef})
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

// containerStatus builds the CRI status of a container; ctx must carry our namespace.
func (s *service) containerStatus(ctx context.Context, c *container) *runtimeapi.ContainerStatus {
	st := c.Status()
	cfg := c.meta.config
	image, imageRef := cfg.GetImage().GetImage(), c.meta.ImageID
	if ci, err := s.findImage(ctx, c.meta.ImageID); err == nil {
		tags, digests := ci.refs()
		if len(tags) > 0 {
			image = tags[0]
		}
		if len(digests) > 0 {
			imageRef = digests[0]
		}
	}
	status := &runtimeapi.ContainerStatus{
		Id:          c.meta.ID,
		Metadata:    cfg.GetMetadata(),
		State:       st.State,
		CreatedAt:   c.meta.CreatedAt,
		StartedAt:   st.StartedAt,
		FinishedAt:  st.FinishedAt,
		ExitCode:    st.ExitCode,
		Image:       &runtimeapi.ImageSpec{Image: image, Annotations: cfg.GetImage().GetAnnotations()},
		ImageRef:    imageRef,
		ImageId:     c.meta.ImageID,
		Reason:      st.Reason,
		Message:     st.Message,
		Labels:      cfg.GetLabels(),
		Annotations: cfg.GetAnnotations(),
		Mounts:      cfg.GetMounts(),
		LogPath:     c.meta.LogPath,
		User:        s.containerUser(ctx, c),
	}
	if st.State == runtimeapi.ContainerState_CONTAINER_UNKNOWN {
		// A start in progress looks created to callers.
		status.State = runtimeapi.ContainerState_CONTAINER_CREATED
	}
	return status
}

// containerUser reads the process identity from the container's spec once; it is
// nil if containerd cannot say (the status is still worth answering).
func (s *service) containerUser(ctx context.Context, c *container) *runtimeapi.ContainerUser {
	c.mu.Lock()
	user := c.user
	c.mu.Unlock()
	if user != nil {
		return user
	}
	cc, err := s.client.LoadContainer(ctx, c.meta.ID)
	if err != nil {
		return nil
	}
	spec, err := cc.Spec(ctx)
	if err != nil {
		klog.FromContext(ctx).V(4).Info("Read container spec", "containerID", c.meta.ID, "err", err)
		return nil
	}
	user = specUser(spec)
	c.mu.Lock()
	c.user = user
	c.mu.Unlock()
	return user
}
