package agent

import (
	"context"
	"errors"
	"fmt"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// killContainer stops one container instance the way kubelet does: a Killing event, the
// preStop hook (bounded by the grace period), then StopContainer with the grace left, so
// SIGKILL comes at most grace seconds after the hook started.
func (a *Agent) killContainer(ctx context.Context, pod *v1.Pod, rp *runtimePod, id, name, reason string, grace int64) error {
	if pod.Name != "" {
		if reason == "" {
			reason = "Stopping container " + name
		}
		a.recorder.Event(containerRef(pod, name), v1.EventTypeNormal, eventKilling, reason)
		if spec := specContainer(pod, name); spec != nil {
			grace = a.runPreStop(ctx, hookTarget{pod: pod, container: spec, containerID: id, podIP: a.hookPodIP(pod, rp)}, grace)
		}
	}
	if err := a.cfg.Runtime.StopContainer(ctx, id, grace); err != nil && !isNotFound(err) {
		return fmt.Errorf("stop container %s (%s): %w", name, id, err)
	}
	return nil
}

// killPod stops every running container (in parallel, each with its preStop hook and the
// grace period), sidecars after the others as kubelet does, and then every sandbox of the
// pod.
func (a *Agent) killPod(ctx context.Context, pod *v1.Pod, rp *runtimePod, grace int64) error {
	var apps, sidecars []*runtimeapi.ContainerStatus
	for _, c := range rp.runningContainers() {
		if isSidecarNamed(pod, c.GetMetadata().GetName()) {
			sidecars = append(sidecars, c)
		} else {
			apps = append(apps, c)
		}
	}
	all := a.killContainers(ctx, pod, rp, apps, grace)
	all = append(all, a.killContainers(ctx, pod, rp, sidecars, grace)...)
	// Every sandbox, not just the ready ones: a sandbox whose pause process died is
	// NOTREADY but still holds its netns and pod IP until it is stopped (kubelet does the same).
	for _, s := range rp.sandboxes {
		if err := a.cfg.Runtime.StopPodSandbox(ctx, s.Id); err != nil && !isNotFound(err) {
			all = append(all, fmt.Errorf("stop sandbox %s: %w", s.Id, err))
		}
	}
	if err := errors.Join(all...); err != nil {
		if pod.Name != "" {
			a.recorder.Eventf(podRef(pod), v1.EventTypeWarning, eventFailedKillPod, "error killing pod: %v", err)
		}
		return err
	}
	return nil
}

// killContainers stops containers in parallel and returns what failed.
func (a *Agent) killContainers(ctx context.Context, pod *v1.Pod, rp *runtimePod, cs []*runtimeapi.ContainerStatus, grace int64) []error {
	errs := make(chan error, len(cs))
	for _, c := range cs {
		go func() {
			errs <- a.killContainer(ctx, pod, rp, c.Id, c.GetMetadata().GetName(), "", grace)
		}()
	}
	var all []error
	for range cs {
		if err := <-errs; err != nil {
			all = append(all, err)
		}
	}
	return all
}

// hookPodIP is the address httpGet hooks default to.
func (a *Agent) hookPodIP(pod *v1.Pod, rp *runtimePod) string {
	if pod.Spec.HostNetwork {
		return a.cfg.NodeIP
	}
	if ips := sandboxIPs(rp.sandboxStatus); len(ips) > 0 {
		return ips[0]
	}
	if pod.Status.PodIP != "" {
		return pod.Status.PodIP
	}
	return ""
}
