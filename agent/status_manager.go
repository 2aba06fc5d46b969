package agent

import (
	"context"
	"fmt"
	"strconv"
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
	// lastRV is the resourceVersion of the object each last write returned.
	lastRV map[types.UID]string
}

func newStatusManager(client kubernetes.Interface) *statusManager {
	return &statusManager{client: client, written: map[types.UID]v1.PodStatus{}, lastRV: map[types.UID]string{}}
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

// write puts the status on the newest copy of the pod the agent knows (the informer's, or
// what its own last write returned) and reads the pod from the apiserver only when that
// copy turns out stale (a 409 Conflict). Without the read before every write a pod costs
// half the requests, which matters when many pods start at once under the client's rate
// limit.
func (m *statusManager) write(ctx context.Context, pod *v1.Pod, status v1.PodStatus) (v1.PodStatus, error) {
	pods := m.client.CoreV1().Pods(pod.Namespace)
	cur := m.newestKnown(pod)
	var written v1.PodStatus
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		if cur == nil {
			live, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			cur = live
		}
		if cur.UID != pod.UID {
			return apierrors.NewNotFound(v1.Resource("pods"), pod.Name)
		}
		next := cur.DeepCopy()
		next.Status = statusOnto(cur.Status, status)
		cur = nil // a conflict means the copy was stale: read it next time
		updated, err := pods.UpdateStatus(ctx, next, metav1.UpdateOptions{})
		if err != nil {
			return err
		}
		written = updated.Status
		m.mu.Lock()
		m.lastRV[pod.UID] = updated.ResourceVersion
		m.mu.Unlock()
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

// statusOnto is the status to write over live: a terminal phase is never left, transition
// times carry over, and conditions others own stay.
func statusOnto(live, status v1.PodStatus) v1.PodStatus {
	if podPhaseTerminal(live.Phase) && live.Phase != status.Phase {
		status.Phase = live.Phase
	}
	status = mergeTransitionTimes(live, status)
	status.Conditions = append(status.Conditions, foreignConditions(live, status)...)
	return status
}

// newestKnown is the informer's copy of the pod, or the one this manager last wrote when
// that is newer; nil when neither has a resourceVersion.
func (m *statusManager) newestKnown(pod *v1.Pod) *v1.Pod {
	m.mu.Lock()
	rv, ok := m.lastRV[pod.UID]
	last := m.written[pod.UID]
	m.mu.Unlock()
	if ok && newerRV(rv, pod.ResourceVersion) {
		cur := pod.DeepCopy()
		cur.ResourceVersion, cur.Status = rv, *last.DeepCopy()
		return cur
	}
	if pod.ResourceVersion == "" {
		return nil
	}
	return pod
}

// newerRV compares resourceVersions numerically (they are etcd revisions); one that is not
// a number is never taken as newer.
func newerRV(a, b string) bool {
	x, errA := strconv.ParseUint(a, 10, 64)
	y, errB := strconv.ParseUint(b, 10, 64)
	return errA == nil && (errB != nil || x > y)
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

// withStartTime returns the pod with the start time this manager wrote when the informer's
// copy does not show it yet.
func (m *statusManager) withStartTime(pod *v1.Pod) *v1.Pod {
	if pod.Status.StartTime != nil {
		return pod
	}
	m.mu.Lock()
	last, ok := m.written[pod.UID]
	m.mu.Unlock()
	if !ok || last.StartTime == nil {
		return pod
	}
	pod = pod.DeepCopy()
	pod.Status.StartTime = last.StartTime.DeepCopy()
	return pod
}

func (m *statusManager) forget(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.written, uid)
	delete(m.lastRV, uid)
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
