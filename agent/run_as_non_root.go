package agent

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// checkRunAsNonRoot enforces runAsNonRoot as kubelet does before it creates a container:
// the effective user (the container's or pod's runAsUser, else the image's) must be known
// and not 0. The error becomes CreateContainerConfigError.
func (a *Agent) checkRunAsNonRoot(ctx context.Context, pod *v1.Pod, c *v1.Container, imageRef string) error {
	if !effectiveRunAsNonRoot(pod, c) {
		return nil
	}
	if uid := effectiveRunAsUser(pod, c); uid != nil {
		if *uid == 0 {
			return fmt.Errorf("container's runAsUser breaks non-root policy (pod: %q, container: %s)", podDesc(pod), c.Name)
		}
		return nil
	}
	resp, err := a.cfg.Images.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: imageRef}, false)
	if err != nil {
		return fmt.Errorf("image status of %s: %w", imageRef, err)
	}
	return verifyImageUser(pod, c, resp.GetImage())
}

func verifyImageUser(pod *v1.Pod, c *v1.Container, img *runtimeapi.Image) error {
	switch {
	case img.GetUid() != nil && img.GetUid().GetValue() == 0:
		return fmt.Errorf("container has runAsNonRoot and image will run as root (pod: %q, container: %s)", podDesc(pod), c.Name)
	case img.GetUid() == nil && img.GetUsername() != "":
		return fmt.Errorf("container has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root (pod: %q, container: %s)",
			img.GetUsername(), podDesc(pod), c.Name)
	case img.GetUid() == nil:
		// No user in the image means root.
		return fmt.Errorf("container has runAsNonRoot and image will run as root (pod: %q, container: %s)", podDesc(pod), c.Name)
	}
	return nil
}

func effectiveRunAsNonRoot(pod *v1.Pod, c *v1.Container) bool {
	if c.SecurityContext != nil && c.SecurityContext.RunAsNonRoot != nil {
		return *c.SecurityContext.RunAsNonRoot
	}
	return pod.Spec.SecurityContext != nil && pod.Spec.SecurityContext.RunAsNonRoot != nil && *pod.Spec.SecurityContext.RunAsNonRoot
}

func effectiveRunAsUser(pod *v1.Pod, c *v1.Container) *int64 {
	if c.SecurityContext != nil && c.SecurityContext.RunAsUser != nil {
		return c.SecurityContext.RunAsUser
	}
	if pod.Spec.SecurityContext != nil {
		return pod.Spec.SecurityContext.RunAsUser
	}
	return nil
}
