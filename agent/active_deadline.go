package agent

import (
	"context"
	"time"

	v1 "k8s.io/api/core/v1"
)

const (
	reasonDeadlineExceeded  = "DeadlineExceeded"
	messageDeadlineExceeded = "Pod was active on the node longer than the specified deadline"
)

// activeDeadlineLeft reports how long the pod may still run under
// spec.activeDeadlineSeconds (counted from status.startTime, as kubelet's
// activeDeadlineHandler does); ok is false when there is no deadline.
func activeDeadlineLeft(pod *v1.Pod, now time.Time) (left time.Duration, ok bool) {
	if pod.Spec.ActiveDeadlineSeconds == nil || pod.Status.StartTime == nil {
		return 0, false
	}
	deadline := pod.Status.StartTime.Add(time.Duration(*pod.Spec.ActiveDeadlineSeconds) * time.Second)
	return deadline.Sub(now), true
}

// failPastDeadline fails a pod that outlived its active deadline: phase Failed, reason
// DeadlineExceeded, and an event; the worker then kills its containers.
func (a *Agent) failPastDeadline(ctx context.Context, pod *v1.Pod) error {
	a.recorder.Event(podRef(pod), v1.EventTypeNormal, reasonDeadlineExceeded, messageDeadlineExceeded)
	status := *pod.Status.DeepCopy()
	status.Phase, status.Reason, status.Message = v1.PodFailed, reasonDeadlineExceeded, messageDeadlineExceeded
	return a.statuses.setPodStatus(ctx, pod, status)
}
