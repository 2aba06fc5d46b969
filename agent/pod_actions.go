package agent

import (
	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// containerToKill is a running container that must go before the pod can proceed.
type containerToKill struct {
	id, name string
	// reason is the Killing event's message.
	reason string
}

// podActions is the plan for one sync, computed from the spec and the runtime state
// before anything is done (kubelet's computePodActions).
type podActions struct {
	// killPod stops every container and sandbox of the pod first: the sandbox is gone or
	// broken, so everything restarts in a new one.
	killPod bool
	// createSandbox asks for a new sandbox with sandboxAttempt.
	createSandbox  bool
	sandboxAttempt uint32
	// sandboxID is the ready sandbox to start containers in when !createSandbox.
	sandboxID string
	// initToStart indexes pod.Spec.InitContainers; -1 for none. Init containers run one
	// at a time, before any app container.
	initToStart int
	// sidecarsToStart indexes pod.Spec.InitContainers: sidecars of an initialized pod
	// that must run again.
	sidecarsToStart []int
	// containersToStart indexes pod.Spec.Containers.
	containersToStart []int
	containersToKill  []containerToKill
}

// unhealthyFunc says whether a running container instance must be restarted (a failed
// liveness or startup probe), and why.
type unhealthyFunc func(c *v1.Container, containerID string) (string, bool)

func computePodActions(pod *v1.Pod, rp *runtimePod, unhealthy unhealthyFunc) podActions {
	if sb := rp.readySandbox(); sb != nil {
		return computeContainerActions(pod, rp, sb.Id, unhealthy)
	}
	act := podActions{killPod: true, createSandbox: true, initToStart: -1}
	if len(rp.sandboxes) > 0 {
		act.sandboxAttempt = rp.sandboxes[0].GetMetadata().GetAttempt() + 1
		// Like kubelet: with restartPolicy Never, a pod whose sandbox died after its
		// containers ran is not brought back.
		if pod.Spec.RestartPolicy == v1.RestartPolicyNever && len(rp.containers) > 0 {
			act.createSandbox = false
			return act
		}
	}
	if len(pod.Spec.InitContainers) > 0 {
		act.initToStart = 0 // a new sandbox runs the init containers again
		return act
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		if pod.Spec.RestartPolicy == v1.RestartPolicyOnFailure && containerSucceeded(rp, c.Name) {
			continue
		}
		act.containersToStart = append(act.containersToStart, i)
	}
	if len(act.containersToStart) == 0 && len(rp.sandboxes) > 0 {
		act.createSandbox = false // everything already succeeded; nothing to run
	}
	return act
}

// computeContainerActions plans the containers of a pod whose sandbox is ready.
func computeContainerActions(pod *v1.Pod, rp *runtimePod, sandboxID string, unhealthy unhealthyFunc) podActions {
	act := podActions{sandboxID: sandboxID, initToStart: -1}
	if init := initContainerProgress(pod, rp, sandboxID); !init.done {
		act.initToStart = init.next
		if init.kill != nil {
			act.containersToKill = append(act.containersToKill, *init.kill)
		}
		return act
	}
	sidecarActions(pod, rp, sandboxID, unhealthy, &act)
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		prev := rp.containersNamed(c.Name)
		if len(prev) == 0 {
			act.containersToStart = append(act.containersToStart, i)
			continue
		}
		latest := prev[0]
		switch latest.State {
		case runtimeapi.ContainerState_CONTAINER_RUNNING:
			reason, kill := "", false
			if latest.GetAnnotations()[annotationContainerHash] != containerHash(c) {
				reason, kill = "Container "+c.Name+" definition changed, will be restarted", true
			} else if unhealthy != nil {
				reason, kill = unhealthy(c, latest.Id)
			}
			if kill {
				act.containersToKill = append(act.containersToKill, containerToKill{id: latest.Id, name: c.Name, reason: reason})
				// The killed attempt exits non-zero, so OnFailure restarts it as Always does.
				if pod.Spec.RestartPolicy != v1.RestartPolicyNever {
					act.containersToStart = append(act.containersToStart, i)
				}
			}
		case runtimeapi.ContainerState_CONTAINER_CREATED:
			// Created but never started (the agent stopped in between): start afresh.
			act.containersToStart = append(act.containersToStart, i)
		case runtimeapi.ContainerState_CONTAINER_UNKNOWN:
			act.containersToKill = append(act.containersToKill, containerToKill{
				id: latest.Id, name: c.Name, reason: "Container " + c.Name + " is in an unknown state, will be restarted",
			})
			act.containersToStart = append(act.containersToStart, i)
		default: // exited
			if shouldRestart(pod.Spec.RestartPolicy, latest) {
				act.containersToStart = append(act.containersToStart, i)
			}
		}
	}
	return act
}

func shouldRestart(policy v1.RestartPolicy, exited *runtimeapi.ContainerStatus) bool {
	switch policy {
	case v1.RestartPolicyNever:
		return false
	case v1.RestartPolicyOnFailure:
		return exited.ExitCode != 0
	default:
		return true
	}
}

func containerSucceeded(rp *runtimePod, name string) bool {
	prev := rp.containersNamed(name)
	return len(prev) > 0 && prev[0].State == runtimeapi.ContainerState_CONTAINER_EXITED && prev[0].ExitCode == 0
}

// startsAny reports whether the plan starts any container.
func (act *podActions) startsAny() bool {
	return act.initToStart >= 0 || len(act.sidecarsToStart) > 0 || len(act.containersToStart) > 0
}
