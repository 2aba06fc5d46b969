package agent

import (
	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// isSidecar reports a restartable init container (restartPolicy Always): it starts in
// init order, but initialization moves on once it runs rather than once it exits, and it
// keeps running (restarted with back-off whatever the pod's restartPolicy) beside the app
// containers until they are done.
func isSidecar(c *v1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways
}

func isSidecarNamed(pod *v1.Pod, name string) bool {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return isSidecar(&pod.Spec.InitContainers[i])
		}
	}
	return false
}

// sidecarProgress is initContainerProgress's verdict on one sidecar: whether the init
// sequence may go past it, and else what to do with it.
func sidecarProgress(c *v1.Container, i int, attempts []*runtimeapi.ContainerStatus) (initProgress, bool) {
	if len(attempts) == 0 {
		return initProgress{next: i}, false
	}
	latest := attempts[0]
	switch latest.State {
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		return initProgress{}, true
	case runtimeapi.ContainerState_CONTAINER_UNKNOWN:
		return initProgress{next: i, kill: &containerToKill{
			id: latest.Id, name: c.Name, reason: "Init container " + c.Name + " is in an unknown state, will be restarted",
		}}, false
	default: // exited or created: start it (again)
		return initProgress{next: i}, false
	}
}

// sidecarActions plans the sidecars of an initialized pod: restart those that exited,
// kill and restart those whose liveness probe failed.
func sidecarActions(pod *v1.Pod, rp *runtimePod, sandboxID string, unhealthy unhealthyFunc, act *podActions) {
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if !isSidecar(c) {
			continue
		}
		attempts := rp.containersNamedIn(c.Name, sandboxID)
		if len(attempts) == 0 || attempts[0].State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			act.sidecarsToStart = append(act.sidecarsToStart, i)
			continue
		}
		if unhealthy == nil {
			continue
		}
		if reason, kill := unhealthy(c, attempts[0].Id); kill {
			act.containersToKill = append(act.containersToKill, containerToKill{id: attempts[0].Id, name: c.Name, reason: reason})
			act.sidecarsToStart = append(act.sidecarsToStart, i)
		}
	}
}

// probedContainers are the containers probes run for: sidecars and app containers.
func probedContainers(pod *v1.Pod) []*v1.Container {
	var out []*v1.Container
	for i := range pod.Spec.InitContainers {
		if isSidecar(&pod.Spec.InitContainers[i]) {
			out = append(out, &pod.Spec.InitContainers[i])
		}
	}
	for i := range pod.Spec.Containers {
		out = append(out, &pod.Spec.Containers[i])
	}
	return out
}
