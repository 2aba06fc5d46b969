package agent

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// maxTerminationMessage is the most the kubelet reads of a termination-message file.
const maxTerminationMessage = 4096

// generatePodStatus computes the pod's status from the runtime (kubelet's
// generateAPIPodStatus). waitingReasons carry what this sync learned about containers
// that are not running (image pull failures, back-off).
func (a *Agent) generatePodStatus(pod *v1.Pod, rp *runtimePod, waitingReasons map[string]waiting) v1.PodStatus {
	old := pod.Status
	st := v1.PodStatus{
		// The generation of the spec this status reflects (PodObservedGenerationTracking).
		ObservedGeneration: pod.Generation,
		QOSClass:           podQOSClass(pod),
		HostIP:             a.cfg.NodeIP,
		HostIPs:            []v1.HostIP{{IP: a.cfg.NodeIP}},
		StartTime:          old.StartTime,
		Conditions:         nil,
	}
	if st.StartTime == nil {
		now := metav1.NewTime(time.Now())
		st.StartTime = &now
	}
	initialized := true
	if sb := rp.readySandbox(); sb != nil {
		initialized = initContainerProgress(pod, rp, sb.Id).done
	} else if len(pod.Spec.InitContainers) > 0 {
		initialized = !rp.empty() && allInitSucceeded(pod, rp)
	}
	for i := range pod.Spec.InitContainers {
		cs := a.containerStatus(pod, rp, &pod.Spec.InitContainers[i], waitingReasons, reasonPodInitializing)
		if !isSidecar(&pod.Spec.InitContainers[i]) { // a sidecar is ready as a running container is
			cs.Ready = cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0
		}
		st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
	}
	appDefault := reasonContainerCreating
	if !initialized {
		appDefault = reasonPodInitializing
	}
	for i := range pod.Spec.Containers {
		st.ContainerStatuses = append(st.ContainerStatuses,
			a.containerStatus(pod, rp, &pod.Spec.Containers[i], waitingReasons, appDefault))
	}
	st.PodIP, st.PodIPs = a.podIPs(pod, rp, old)
	st.Phase = podPhase(pod, st, initialized)
	st.Conditions = podConditions(pod, rp, st, initialized)
	return st
}

// allInitSucceeded: every init container's newest attempt exited 0 (for a pod whose
// sandbox is gone, e.g. a finished pod).
func allInitSucceeded(pod *v1.Pod, rp *runtimePod) bool {
	for _, c := range pod.Spec.InitContainers {
		if !containerSucceeded(rp, c.Name) {
			return false
		}
	}
	return true
}

// podIPs reports the sandbox's addresses; once known they are kept while the sandbox is
// gone (the pod IP of a finished pod stays, as with kubelet).
func (a *Agent) podIPs(pod *v1.Pod, rp *runtimePod, old v1.PodStatus) (string, []v1.PodIP) {
	var ips []string
	switch {
	case pod.Spec.HostNetwork:
		ips = []string{a.cfg.NodeIP}
	case rp.sandboxStatus != nil && rp.sandboxStatus.State == runtimeapi.PodSandboxState_SANDBOX_READY:
		ips = sandboxIPs(rp.sandboxStatus)
	default:
		return old.PodIP, old.PodIPs
	}
	if len(ips) == 0 {
		return "", nil
	}
	out := make([]v1.PodIP, len(ips))
	for i, ip := range ips {
		out[i] = v1.PodIP{IP: ip}
	}
	return ips[0], out
}

func (a *Agent) containerStatus(pod *v1.Pod, rp *runtimePod, c *v1.Container, waitingReasons map[string]waiting, defaultReason string) v1.ContainerStatus {
	cs := v1.ContainerStatus{Name: c.Name, Image: c.Image, Started: new(bool)}
	attempts := rp.containersNamed(c.Name)
	w, hasWaiting := waitingReasons[c.Name]
	if len(attempts) == 0 {
		if w.reason == "" { // none, or only a message (blockedWaiting)
			w.reason = defaultReason
		}
		cs.State.Waiting = &v1.ContainerStateWaiting{Reason: w.reason, Message: w.message}
		return cs
	}
	latest := attempts[0]
	cs.RestartCount = int32(restartCountOf(latest))
	cs.ContainerID = a.containerID(latest.Id)
	cs.ImageID = latest.ImageRef
	if img := latest.GetImage().GetImage(); img != "" && !strings.HasPrefix(img, "sha256:") {
		cs.Image = img
	}
	cs.State = a.containerState(pod, latest)
	if len(attempts) > 1 {
		cs.LastTerminationState = a.containerState(pod, attempts[1])
		if cs.LastTerminationState.Terminated == nil {
			cs.LastTerminationState = v1.ContainerState{}
		}
	}
	if hasWaiting && w.reason != "" && cs.State.Running == nil {
		// The last attempt ended and the next one waits (back-off, image pull).
		if cs.State.Terminated != nil {
			cs.LastTerminationState = cs.State
		}
		cs.State = v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: w.reason, Message: w.message}}
	}
	running := cs.State.Running != nil
	started := running && a.prober.containerStarted(pod, c, latest.Id)
	cs.Started = &started
	cs.Ready = started && a.prober.containerReady(pod, c, latest.Id)
	return cs
}

func (a *Agent) containerID(id string) string {
	return fmt.Sprintf("%s://%s", a.runtimeName, id)
}

func (a *Agent) containerState(pod *v1.Pod, c *runtimeapi.ContainerStatus) v1.ContainerState {
	switch c.State {
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		return v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: nanoTime(c.StartedAt)}}
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		reason := c.Reason
		if reason == "" {
			reason = "Completed"
			if c.ExitCode != 0 {
				reason = "Error"
			}
		}
		return v1.ContainerState{Terminated: &v1.ContainerStateTerminated{
			ExitCode: c.ExitCode,
			Reason:   reason,
			Message:  a.terminationMessage(pod, c, exitedWith(c)),
			// Unix nanoseconds as given, so a container that never started shows the
			// epoch, as with kubelet.
			StartedAt:   metav1.NewTime(time.Unix(0, c.StartedAt)),
			FinishedAt:  metav1.NewTime(time.Unix(0, c.FinishedAt)),
			ContainerID: a.containerID(c.Id),
		}}
	case runtimeapi.ContainerState_CONTAINER_UNKNOWN:
		return v1.ContainerState{Terminated: &v1.ContainerStateTerminated{
			ExitCode: 137, Reason: "ContainerStatusUnknown",
			Message:     "The container could not be located when the pod was terminated",
			ContainerID: a.containerID(c.Id),
		}}
	default:
		return v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: reasonContainerCreating}}
	}
}

// terminationMessage is what the container wrote to its termination-message file, else
// the runtime's message, else (with FallbackToLogsOnError and a failure) its last log lines.
func (a *Agent) terminationMessage(pod *v1.Pod, c *runtimeapi.ContainerStatus, failed bool) string {
	if pod.Name == "" {
		return c.Message
	}
	name, restarts := c.GetMetadata().GetName(), restartCountOf(c)
	if c.GetAnnotations()[annotationTerminationMessagePath] != "" {
		if msg := readHead(a.terminationMessagePath(pod, name, restarts), maxTerminationMessage); msg != "" {
			return msg
		}
	}
	if c.Message != "" {
		return c.Message
	}
	if failed && c.GetAnnotations()[annotationTerminationMessagePolicy] == string(v1.TerminationMessageFallbackToLogsOnError) {
		logPath := c.GetLogPath() // runtimes report it absolute; the config had it relative
		if !filepath.IsAbs(logPath) {
			logPath = filepath.Join(a.podLogDir(pod), logPath)
		}
		return tailCRILog(logPath, maxFallbackLogLines, maxFallbackLogBytes)
	}
	return ""
}

func exitedWith(c *runtimeapi.ContainerStatus) bool { return c.ExitCode != 0 }

func readHead(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	buf := make([]byte, n)
	m, _ := io.ReadFull(f, buf)
	return string(buf[:m])
}

func nanoTime(ns int64) metav1.Time {
	if ns == 0 {
		return metav1.Time{}
	}
	return metav1.NewTime(time.Unix(0, ns))
}

// podPhase is kubelet's getPhase (without sidecar containers).
func podPhase(pod *v1.Pod, st v1.PodStatus, initialized bool) v1.PodPhase {
	if podPhaseTerminal(pod.Status.Phase) {
		return pod.Status.Phase // phases never go back
	}
	if !initialized {
		for _, cs := range st.InitContainerStatuses {
			if t := cs.State.Terminated; t != nil && t.ExitCode != 0 && pod.Spec.RestartPolicy == v1.RestartPolicyNever &&
				!isSidecarNamed(pod, cs.Name) {
				return v1.PodFailed
			}
		}
		return v1.PodPending
	}
	var waiting, running, stopped, succeeded int
	for _, cs := range st.ContainerStatuses {
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil:
			stopped++
			if cs.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case cs.State.Waiting != nil:
			if cs.LastTerminationState.Terminated != nil {
				stopped++ // restarting: it has run before
			} else {
				waiting++
			}
		}
	}
	switch {
	case waiting > 0:
		return v1.PodPending
	case running > 0:
		return v1.PodRunning
	case stopped > 0:
		if pod.Spec.RestartPolicy == v1.RestartPolicyAlways {
			return v1.PodRunning
		}
		if stopped == succeeded {
			return v1.PodSucceeded
		}
		if pod.Spec.RestartPolicy == v1.RestartPolicyNever {
			return v1.PodFailed
		}
		return v1.PodRunning
	}
	return v1.PodPending
}

// podConditions builds the kubelet-owned conditions and keeps the others (PodScheduled).
func podConditions(pod *v1.Pod, rp *runtimePod, st v1.PodStatus, initialized bool) []v1.PodCondition {
	// Kubelet's order: others' conditions, then its own, PodScheduled last.
	var conds []v1.PodCondition
	scheduled := v1.PodCondition{Type: v1.PodScheduled, Status: v1.ConditionTrue}
	for _, c := range pod.Status.Conditions {
		switch {
		case c.Type == v1.PodScheduled:
			scheduled = c
		case !kubeletCondition(c.Type):
			conds = append(conds, c)
		}
	}
	sandboxReady := rp.readySandbox() != nil
	conds = append(conds,
		boolCondition(v1.PodReadyToStartContainers, sandboxReady, "", ""),
		initializedCondition(st, initialized))
	var unready []string
	for _, cs := range st.InitContainerStatuses {
		if isSidecarNamed(pod, cs.Name) && !cs.Ready {
			unready = append(unready, cs.Name) // kubelet counts sidecars in ContainersReady
		}
	}
	for _, cs := range st.ContainerStatuses {
		if !cs.Ready {
			unready = append(unready, cs.Name)
		}
	}
	ready := len(unready) == 0
	reason, msg := "", ""
	switch {
	case podPhaseTerminal(st.Phase):
		ready, reason = false, "PodCompleted"
	case !ready:
		reason, msg = "ContainersNotReady", fmt.Sprintf("containers with unready status: [%s]", strings.Join(unready, " "))
	}
	conds = append(conds,
		boolCondition(v1.PodReady, ready, reason, msg),
		boolCondition(v1.ContainersReady, ready, reason, msg),
		scheduled)
	for i := range conds {
		if kubeletCondition(conds[i].Type) {
			conds[i].ObservedGeneration = pod.Generation
		}
	}
	return conds
}

func initializedCondition(st v1.PodStatus, initialized bool) v1.PodCondition {
	if initialized {
		return boolCondition(v1.PodInitialized, true, "", "")
	}
	var incomplete []string
	for _, cs := range st.InitContainerStatuses {
		if !cs.Ready {
			incomplete = append(incomplete, cs.Name)
		}
	}
	return boolCondition(v1.PodInitialized, false, "ContainersNotInitialized",
		fmt.Sprintf("containers with incomplete status: [%s]", strings.Join(incomplete, " ")))
}

func kubeletCondition(t v1.PodConditionType) bool {
	switch t {
	case v1.PodReadyToStartContainers, v1.PodInitialized, v1.ContainersReady, v1.PodReady:
		return true
	}
	return false
}

func boolCondition(t v1.PodConditionType, ok bool, reason, msg string) v1.PodCondition {
	s := v1.ConditionFalse
	if ok {
		s = v1.ConditionTrue
	}
	return v1.PodCondition{Type: t, Status: s, Reason: reason, Message: msg}
}
