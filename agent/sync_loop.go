package agent

import (
	"context"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

// finishedMemory is how long a torn-down pod's UID is remembered, so late events for it
// are ignored.
const finishedMemory = 5 * time.Minute

func (a *Agent) handlePodUpdate(ctx context.Context, u podUpdate) {
	logger := klog.FromContext(ctx)
	switch u.op {
	case podRemoved:
		logger.V(2).Info("SyncLoop REMOVE", "pod", klog.KObj(u.pod), "podUID", u.pod.UID)
		a.workers.removePod(u.pod)
	default:
		logger.V(4).Info("SyncLoop UPDATE", "pod", klog.KObj(u.pod), "podUID", u.pod.UID)
		a.workers.updatePod(ctx, u.pod)
	}
}

// handleRuntimeChange wakes the worker of a pod whose containers changed. A pod the
// runtime has but the apiserver does not (deleted while the agent was down) is torn down.
func (a *Agent) handleRuntimeChange(ctx context.Context, uid types.UID) {
	if a.workers.kick(uid) || a.workers.known(uid) {
		return
	}
	if pod := a.source.podByUID(uid); pod != nil {
		a.workers.updatePod(ctx, pod)
		return
	}
	klog.FromContext(ctx).Info("Tearing down a pod the apiserver no longer has", "podUID", uid)
	a.workers.terminateOrphan(ctx, &v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: uid}})
}

// housekeeping makes sure every bound pod has a worker and resyncs them all now and then,
// in case an event was missed.
func (a *Agent) housekeeping(ctx context.Context) {
	resync := time.Since(a.lastResync) >= podResyncPeriod
	if resync {
		a.lastResync = time.Now()
	}
	for _, pod := range a.source.list() {
		if resync || !a.workers.known(pod.UID) {
			a.workers.updatePod(ctx, pod)
		}
	}
	a.workers.forgetFinished(finishedMemory)
	a.crashBackoff.GC()
}
