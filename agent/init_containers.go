package agent

import (
	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// initProgress is where a pod's init containers stand in its current sandbox.
type initProgress struct {
	done bool // all succeeded (or app containers already ran in this sandbox)
	// next is the init container to (re)start, -1 when one is running or the sequence
	// failed for good.
	next int
	// failed is set when an init container failed and restartPolicy Never forbids a retry.
	failed bool
	// kill is a container in an unknown state to stop before next starts again.
	kill *containerToKill
}

// initContainerProgress walks the init containers in order, as kubelet's
// computeInitContainerActions does: a classic init container must exit 0, a sidecar
// (restartPolicy Always) must be running, before the next one starts.
func initContainerProgress(pod *v1.Pod, rp *runtimePod, sandboxID string) initProgress {
	if len(pod.Spec.InitContainers) == 0 {
		return initProgress{done: true, next: -1}
	}
	// App containers in this sandbox mean initialization finished earlier, even if the
	// init containers were since removed.
	for _, c := range pod.Spec.Containers {
		if len(rp.containersNamedIn(c.Name, sandboxID)) > 0 {
			return initProgress{done: true, next: -1}
		}
	}
	for i, c := range pod.Spec.InitContainers {
		attempts := rp.containersNamedIn(c.Name, sandboxID)
		if isSidecar(&c) {
			if p, passed := sidecarProgress(&c, i, attempts); !passed {
				return p
			}
			continue
		}
		if len(attempts) == 0 {
			return initProgress{next: i}
		}
		latest := attempts[0]
		switch latest.State {
		case runtimeapi.ContainerState_CONTAINER_RUNNING:
			return initProgress{next: -1}
		case runtimeapi.ContainerState_CONTAINER_EXITED:
			if latest.ExitCode == 0 {
				continue
			}
			if pod.Spec.RestartPolicy == v1.RestartPolicyNever {
				return initProgress{next: -1, failed: true}
			}
			return initProgress{next: i}
		case runtimeapi.ContainerState_CONTAINER_UNKNOWN:
			return initProgress{next: i, kill: &containerToKill{
				id: latest.Id, name: c.Name, reason: "Init container " + c.Name + " is in an unknown state, will be restarted",
			}}
		default:
			return initProgress{next: i}
		}
	}
	return initProgress{done: true, next: -1}
}

// isInitContainer reports whether name is one of the pod's init containers.
func isInitContainer(pod *v1.Pod, name string) bool {
	for _, c := range pod.Spec.InitContainers {
		if c.Name == name {
			return true
		}
	}
	return false
}

// specContainer finds a container of either kind by name.
func specContainer(pod *v1.Pod, name string) *v1.Container {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	return nil
}
