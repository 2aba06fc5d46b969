package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"
)

// statusManager writes pod status to the apiserver, and only when it changed: it remembers
// the last status it wrote for each pod.
type statusManager struct {
	client kubernetes.Interface

	mu      sync.Mutex
	written map[types.UID]v1.PodStatus
}

func newStatusManager(client kubernetes.Interface) *statusManager {
	return &statusManager{client: client, written: map[types.UID]v1.PodStatus{}}
}

// setPodStatus writes status unless it equals what was last written (or what the pod
// already shows). Condition transition times are carried over from the current status.
func (m *statusManager) setPodStatus(ctx context.Context, pod *v1.Pod, status v1.PodStatus) error {
	m.mu.Lock()
	last, ok := m.written[pod.UID]
	m.mu.Unlock()
	base := pod.Status
	if ok {
		base = last
	}
	if base.StartTime != nil {
		status.StartTime = base.StartTime // the informer's copy may predate our last write
	}
	if podPhaseTerminal(base.Phase) {
		// A finished pod stays finished, with the reason it got (a rejection, say).
		status.Phase = base.Phase
		if status.Reason == "" && status.Message == "" {
			status.Reason, status.Message = base.Reason, base.Message
		}
	}
	status = mergeTransitionTimes(base, status)
	if statusEqual(base, status) {
		return nil
	}
	written, err := m.write(ctx, pod, status)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.written[pod.UID] = written
	m.mu.Unlock()
	return nil
}

// write puts the status on the freshest copy of the pod, retrying on conflicts.
func (m *statusManager) write(ctx context.Context, pod *v1.Pod, status v1.PodStatus) (v1.PodStatus, error) {
	pods := m.client.CoreV1().Pods(pod.Namespace)
	var written v1.PodStatus
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		cur, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.UID != pod.UID {
			return apierrors.NewNotFound(v1.Resource("pods"), pod.Name)
		}
		if podPhaseTerminal(cur.Status.Phase) && cur.Status.Phase != status.Phase {
			status.Phase = cur.Status.Phase // never move a pod out of a terminal phase
		}
		status = mergeTransitionTimes(cur.Status, status)
		status.Conditions = append(status.Conditions, foreignConditions(cur.Status, status)...)
		cur.Status = status
		updated, err := pods.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		if err != nil {
			return err
		}
		written = updated.Status
		return nil
	})
	if apierrors.IsNotFound(err) {
		return status, nil // the pod is gone; its worker will learn it from the informer
	}
	if err != nil {
		return v1.PodStatus{}, fmt.Errorf("update status of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	klog.FromContext(ctx).V(3).Info("Pod status written", "pod", klog.KObj(pod), "phase", written.Phase)
	return written, nil
}

// foreignConditions are conditions others set on the live object (PodScheduled by the
// scheduler, DisruptionTarget ...) that the generated status does not carry yet.
func foreignConditions(live, generated v1.PodStatus) []v1.PodCondition {
	var out []v1.PodCondition
	for _, c := range live.Conditions {
		if kubeletCondition(c.Type) {
			continue
		}
		found := false
		for _, g := range generated.Conditions {
			found = found || g.Type == c.Type
		}
		if !found {
			out = append(out, c)
		}
	}
	return out
}

func (m *statusManager) forget(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.written, uid)
}

// mergeTransitionTimes gives each condition of next the transition time it had in prev
// when its status did not change, else now.
func mergeTransitionTimes(prev, next v1.PodStatus) v1.PodStatus {
	now := metav1.NewTime(time.Now())
	conds := make([]v1.PodCondition, len(next.Conditions))
	for i, c := range next.Conditions {
		c.LastTransitionTime = now
		for _, p := range prev.Conditions {
			if p.Type == c.Type && p.Status == c.Status {
				c.LastTransitionTime = p.LastTransitionTime
			}
		}
		conds[i] = c
	}
	next.Conditions = conds
	return next
}

// statusEqual compares statuses as the apiserver stores them (times at second precision).
func statusEqual(a, b v1.PodStatus) bool {
	return apiequality.Semantic.DeepEqual(normalizeStatus(a), normalizeStatus(b))
}

func normalizeStatus(s v1.PodStatus) v1.PodStatus {
	s = *s.DeepCopy()
	trunc := func(t *metav1.Time) {
		if t != nil && !t.IsZero() {
			*t = metav1.NewTime(t.Time.Truncate(time.Second))
		}
	}
	trunc(s.StartTime)
	for i := range s.Conditions {
		trunc(&s.Conditions[i].LastTransitionTime)
		trunc(&s.Conditions[i].LastProbeTime)
	}
	for i := range s.ContainerStatuses {
		for _, st := range []*v1.ContainerState{&s.ContainerStatuses[i].State, &s.ContainerStatuses[i].LastTerminationState} {
			if st.Running != nil {
				trunc(&st.Running.StartedAt)
			}
			if st.Terminated != nil {
				trunc(&st.Terminated.StartedAt)
				trunc(&st.Terminated.FinishedAt)
			}
		}
	}
	return s
}
