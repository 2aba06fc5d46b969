package registry

import (
	"context"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// nodeUnreachablePodReason is the status.reason the node lifecycle controller gives
// pods on a node that stopped reporting.
const nodeUnreachablePodReason = "NodeLost"

func podColumns() []metav1.TableColumnDefinition {
	status, spec := corev1.PodStatus{}.SwaggerDoc(), corev1.PodSpec{}.SwaggerDoc()
	return []metav1.TableColumnDefinition{
		nameColumn(),
		{Name: "Ready", Type: "string", Description: "The aggregate readiness state of this pod for accepting traffic."},
		{Name: "Status", Type: "string", Description: "The aggregate status of the containers in this pod."},
		{Name: "Restarts", Type: "string", Description: "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."},
		ageColumn(),
		{Name: "IP", Type: "string", Priority: 1, Description: status["podIP"]},
		{Name: "Node", Type: "string", Priority: 1, Description: spec["nodeName"]},
		{Name: "Nominated Node", Type: "string", Priority: 1, Description: status["nominatedNodeName"]},
		{Name: "Readiness Gates", Type: "string", Priority: 1, Description: spec["readinessGates"]},
	}
}

func (s podStrategy) ConvertToTable(_ context.Context, obj runtime.Object) (*metav1.Table, error) {
	return tableOf(obj, s.now, podColumns(), podItems, podRow)
}

func podItems(list *corev1.PodList) []corev1.Pod { return list.Items }

func podRow(pod *corev1.Pod, now time.Time) metav1.TableRow {
	st := summarizePod(pod)
	restarts := strconv.Itoa(st.restarts)
	if st.restarts != 0 && !st.lastRestart.IsZero() {
		restarts = fmt.Sprintf("%d (%s ago)", st.restarts, age(now, st.lastRestart))
	}
	row := newRow(pod, pod.Name, fmt.Sprintf("%d/%d", st.ready, st.total), st.reason, restarts, age(now, pod.CreationTimestamp),
		orNone(podIP(&pod.Status)), orNone(pod.Spec.NodeName), orNone(pod.Status.NominatedNodeName), readinessGatesCell(pod))
	switch pod.Status.Phase {
	case corev1.PodSucceeded, corev1.PodFailed:
		// kubectl hides completed pods from some views by this condition.
		row.Conditions = []metav1.TableRowCondition{{Type: metav1.RowCompleted, Status: metav1.ConditionTrue, Reason: string(pod.Status.Phase), Message: "The pod has completed successfully."}}
		if pod.Status.Phase == corev1.PodFailed {
			row.Conditions[0].Message = "The pod failed."
		}
	}
	return row
}

// podSummary is what kubectl shows for a pod in one line.
type podSummary struct {
	ready, total int
	reason       string
	restarts     int
	lastRestart  metav1.Time
}

// summarizePod computes READY, STATUS and RESTARTS as kube-apiserver's pod printer
// does: the phase or status.reason, overridden by the first failing or waiting init
// container ("Init:..."), then by the containers' waiting/terminated reasons
// (CrashLoopBackOff, Completed, ...), and "Terminating" once deletion is requested.
func summarizePod(pod *corev1.Pod) podSummary {
	st := podSummary{total: len(pod.Spec.Containers), reason: string(pod.Status.Phase)}
	if pod.Status.Reason != "" {
		st.reason = pod.Status.Reason
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Reason == corev1.PodReasonSchedulingGated {
			st.reason = corev1.PodReasonSchedulingGated
		}
	}
	sidecars := map[string]bool{}
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecars[c.Name] = true
			st.total++
		}
	}
	initializing, sidecarRestarts, sidecarLast := summarizeInitContainers(pod, sidecars, &st)
	if !initializing || podConditionTrue(pod, corev1.PodInitialized) {
		st.restarts, st.lastRestart = sidecarRestarts, sidecarLast
		summarizeContainers(pod, &st)
	}
	switch {
	case pod.DeletionTimestamp != nil && pod.Status.Reason == nodeUnreachablePodReason:
		st.reason = "Unknown"
	case pod.DeletionTimestamp != nil && !terminalPhase(pod.Status.Phase):
		st.reason = "Terminating"
	}
	return st
}

// summarizeInitContainers walks the init containers in order up to the first one that
// has not finished; it returns whether the pod is still initializing and the restarts
// of sidecars (which keep counting after initialization).
func summarizeInitContainers(pod *corev1.Pod, sidecars map[string]bool, st *podSummary) (bool, int, metav1.Time) {
	sidecarRestarts, sidecarLast := 0, metav1.Time{}
	for i, c := range pod.Status.InitContainerStatuses {
		st.restarts += int(c.RestartCount)
		if t := c.LastTerminationState.Terminated; t != nil && st.lastRestart.Before(&t.FinishedAt) {
			st.lastRestart = t.FinishedAt
		}
		if sidecars[c.Name] {
			sidecarRestarts += int(c.RestartCount)
			if t := c.LastTerminationState.Terminated; t != nil && sidecarLast.Before(&t.FinishedAt) {
				sidecarLast = t.FinishedAt
			}
		}
		switch {
		case c.State.Terminated != nil && c.State.Terminated.ExitCode == 0:
			continue
		case sidecars[c.Name] && c.Started != nil && *c.Started:
			if c.Ready {
				st.ready++
			}
			continue
		case c.State.Terminated != nil:
			st.reason = "Init:" + terminatedReason(c.State.Terminated)
		case c.State.Waiting != nil && c.State.Waiting.Reason != "" && c.State.Waiting.Reason != "PodInitializing":
			st.reason = "Init:" + c.State.Waiting.Reason
		default:
			st.reason = fmt.Sprintf("Init:%d/%d", i, len(pod.Spec.InitContainers))
		}
		return true, sidecarRestarts, sidecarLast
	}
	return false, sidecarRestarts, sidecarLast
}

func terminatedReason(t *corev1.ContainerStateTerminated) string {
	switch {
	case t.Reason != "":
		return t.Reason
	case t.Signal != 0:
		return fmt.Sprintf("Signal:%d", t.Signal)
	}
	return fmt.Sprintf("ExitCode:%d", t.ExitCode)
}

// summarizeContainers lets the first container (in spec order) with a waiting or
// terminated reason decide the STATUS, as kube walks them from last to first.
func summarizeContainers(pod *corev1.Pod, st *podSummary) {
	hasRunning, errorReason := false, ""
	for i := len(pod.Status.ContainerStatuses) - 1; i >= 0; i-- {
		c := pod.Status.ContainerStatuses[i]
		st.restarts += int(c.RestartCount)
		if t := c.LastTerminationState.Terminated; t != nil && st.lastRestart.Before(&t.FinishedAt) {
			st.lastRestart = t.FinishedAt
		}
		switch {
		case c.State.Waiting != nil && c.State.Waiting.Reason != "":
			st.reason = c.State.Waiting.Reason
		case c.State.Terminated != nil:
			st.reason = terminatedReason(c.State.Terminated)
			if c.State.Terminated.ExitCode != 0 {
				errorReason = st.reason
			}
		case c.Ready && c.State.Running != nil:
			hasRunning = true
			st.ready++
		}
	}
	// One container completing does not make the pod Completed while another runs, and
	// a failed one elsewhere is what the user needs to see.
	if st.reason == "Completed" {
		switch {
		case hasRunning && podConditionTrue(pod, corev1.PodReady):
			st.reason = "Running"
		case errorReason != "":
			st.reason = errorReason
		case hasRunning:
			st.reason = "NotReady"
		}
	}
}

func podConditionTrue(pod *corev1.Pod, t corev1.PodConditionType) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == t {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func readinessGatesCell(pod *corev1.Pod) string {
	if len(pod.Spec.ReadinessGates) == 0 {
		return "<none>"
	}
	ready := 0
	for _, gate := range pod.Spec.ReadinessGates {
		if podConditionTrue(pod, gate.ConditionType) {
			ready++
		}
	}
	return fmt.Sprintf("%d/%d", ready, len(pod.Spec.ReadinessGates))
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}
