package agent

import (
	"context"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

// workerState is where a pod is in its life on this node. It only moves forward:
// syncing → terminating → terminated.
type workerState int

const (
	// stateSyncing: the pod should run; sync it towards its spec.
	stateSyncing workerState = iota
	// stateTerminating: stop every container and the sandbox.
	stateTerminating
	// stateTerminated: nothing runs. A finished pod waits here (its containers kept for
	// logs) until it is deleted; then the runtime objects go and the pod object is deleted.
	stateTerminated
)

func (s workerState) String() string {
	return [...]string{"syncing", "terminating", "terminated"}[s]
}

// podSyncer does the work; podWorkers decides when and in which state.
type podSyncer interface {
	// syncPod drives a running pod towards its spec and reports its status. terminal says
	// the pod has finished (Succeeded or Failed); requeueAfter > 0 asks for another sync.
	syncPod(ctx context.Context, pod *v1.Pod) (requeueAfter time.Duration, terminal bool, err error)
	// syncTerminatingPod stops all containers (with the pod's grace period) and the sandbox.
	syncTerminatingPod(ctx context.Context, pod *v1.Pod, removed bool) error
	// syncTerminatedPod removes the runtime objects and, when the apiserver still has the
	// pod, deletes it.
	syncTerminatedPod(ctx context.Context, pod *v1.Pod, removed bool) error
}

// podWorker is one pod's goroutine and mailbox. The mailbox holds only the newest pod:
// an update that arrives while a sync runs replaces any older pending one.
type podWorker struct {
	uid  types.UID
	wake chan struct{}

	// Guarded by podWorkers.mu.
	pod     *v1.Pod
	removed bool // the apiserver no longer has the pod (or never had it: an orphan)
	state   workerState
	timer   *time.Timer
	// cancelSync cancels a sync in progress, so that a deletion does not wait for a
	// long image pull to finish.
	cancelSync context.CancelFunc
}

// podWorkers runs one goroutine per pod UID, like kubelet's pod_workers.go.
type podWorkers struct {
	syncer podSyncer

	mu      sync.Mutex
	workers map[types.UID]*podWorker
	// finished remembers pods torn down and deleted, so that late informer events for them
	// do not start a new worker.
	finished map[types.UID]time.Time
	wg       sync.WaitGroup
}

func newPodWorkers(s podSyncer) *podWorkers {
	return &podWorkers{syncer: s, workers: map[types.UID]*podWorker{}, finished: map[types.UID]time.Time{}}
}

// updatePod hands the newest version of a pod to its worker, starting one if needed.
func (p *podWorkers) updatePod(ctx context.Context, pod *v1.Pod) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, done := p.finished[pod.UID]; done {
		return
	}
	w := p.workerLocked(ctx, pod.UID)
	if w.removed {
		return
	}
	old := w.pod
	w.pod = pod
	if pod.DeletionTimestamp != nil {
		w.interruptLocked()
	}
	// Our own status writes come back as updates; like kubelet's reconcile path they only
	// refresh the stored pod and do not cause a sync.
	if old == nil || needsSync(old, pod) {
		p.wakeLocked(w)
	}
}

// needsSync reports whether an update changed anything the agent acts on.
func needsSync(old, cur *v1.Pod) bool {
	return !apiequality.Semantic.DeepEqual(old.Spec, cur.Spec) ||
		!apiequality.Semantic.DeepEqual(old.Labels, cur.Labels) ||
		!apiequality.Semantic.DeepEqual(old.Annotations, cur.Annotations) ||
		!apiequality.Semantic.DeepEqual(old.DeletionTimestamp, cur.DeletionTimestamp) ||
		!apiequality.Semantic.DeepEqual(old.DeletionGracePeriodSeconds, cur.DeletionGracePeriodSeconds) ||
		old.Status.Phase != cur.Status.Phase
}

// removePod tells a pod's worker that the apiserver no longer has the pod.
func (p *podWorkers) removePod(pod *v1.Pod) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w, ok := p.workers[pod.UID]
	if !ok {
		return
	}
	w.pod, w.removed = pod, true
	w.interruptLocked()
	p.wakeLocked(w)
}

// interruptLocked cancels a running syncPod; terminating syncs are never interrupted.
func (w *podWorker) interruptLocked() {
	if w.state == stateSyncing && w.cancelSync != nil {
		w.cancelSync()
	}
}

// terminateOrphan starts tearing down a pod the runtime has and the apiserver does not.
// pod is a stub built from the runtime's labels.
func (p *podWorkers) terminateOrphan(ctx context.Context, pod *v1.Pod) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.workerLocked(ctx, pod.UID)
	if w.pod == nil {
		w.pod = pod
	}
	w.removed = true
	p.wakeLocked(w)
}

// kick asks a pod's worker to sync again; it reports whether the pod has a worker.
func (p *podWorkers) kick(uid types.UID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	w, ok := p.workers[uid]
	if ok {
		p.wakeLocked(w)
	}
	return ok
}

func (p *podWorkers) known(uid types.UID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.workers[uid]
	_, done := p.finished[uid]
	return ok || done
}

// forgetFinished drops finished entries older than age.
func (p *podWorkers) forgetFinished(age time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for uid, at := range p.finished {
		if time.Since(at) > age {
			delete(p.finished, uid)
		}
	}
}

func (p *podWorkers) wait() { p.wg.Wait() }

func (p *podWorkers) workerLocked(ctx context.Context, uid types.UID) *podWorker {
	if w, ok := p.workers[uid]; ok {
		return w
	}
	klog.FromContext(ctx).V(2).Info("Starting pod worker", "podUID", uid)
	w := &podWorker{uid: uid, wake: make(chan struct{}, 1)}
	p.workers[uid] = w
	p.wg.Go(func() { p.run(ctx, w) })
	return w
}

func (p *podWorkers) wakeLocked(w *podWorker) {
	select {
	case w.wake <- struct{}{}:
	default: // a wake-up is already pending; it will see the newest pod
	}
}

// requeue wakes the worker after d, replacing any earlier timer.
func (p *podWorkers) requeue(w *podWorker, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
	}
	w.timer = time.AfterFunc(d, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.wakeLocked(w)
	})
}

// run is the worker goroutine: wait for a wake-up, take the newest pod, act by state.
func (p *podWorkers) run(ctx context.Context, w *podWorker) {
	logger := klog.FromContext(ctx).WithValues("podUID", w.uid)
	ctx = klog.NewContext(ctx, logger)
	defer p.stopTimer(w)
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		}
		p.mu.Lock()
		pod, removed, state := w.pod, w.removed, w.state
		stepCtx, cancel := context.WithCancel(ctx)
		w.cancelSync = cancel
		p.mu.Unlock()
		if pod == nil {
			cancel()
			continue
		}
		next, requeue, done := p.step(stepCtx, pod, removed, state)
		p.mu.Lock()
		w.cancelSync = nil
		p.mu.Unlock()
		cancel()
		if done {
			p.finish(w)
			return
		}
		p.mu.Lock()
		if next != w.state {
			logger.V(2).Info("Pod worker state changed", "pod", klog.KObj(pod), "from", w.state, "to", next)
			w.state = next
			p.wakeLocked(w) // act on the new state at once
		}
		p.mu.Unlock()
		if requeue > 0 {
			p.requeue(w, requeue)
		}
	}
}

// step runs one sync for the given state and returns the next state, when to sync again,
// and whether the worker is done.
func (p *podWorkers) step(ctx context.Context, pod *v1.Pod, removed bool, state workerState) (workerState, time.Duration, bool) {
	logger := klog.FromContext(ctx).WithValues("pod", klog.KObj(pod))
	switch state {
	case stateSyncing:
		if removed || pod.DeletionTimestamp != nil || podPhaseTerminal(pod.Status.Phase) {
			return stateTerminating, 0, false
		}
		requeue, terminal, err := p.syncer.syncPod(ctx, pod)
		if err != nil {
			if ctx.Err() == nil {
				logger.Error(err, "Syncing pod")
			}
			return state, syncErrorRetry, false
		}
		if terminal {
			return stateTerminating, 0, false
		}
		return state, requeue, false
	case stateTerminating:
		if err := p.syncer.syncTerminatingPod(ctx, pod, removed); err != nil {
			logger.Error(err, "Terminating pod")
			return state, time.Second, false
		}
		return stateTerminated, 0, false
	default: // stateTerminated
		if !removed && pod.DeletionTimestamp == nil {
			return state, 0, false // a finished pod: keep its containers until it is deleted
		}
		if err := p.syncer.syncTerminatedPod(ctx, pod, removed); err != nil {
			logger.Error(err, "Cleaning up terminated pod")
			return state, time.Second, false
		}
		return state, 0, true
	}
}

func (p *podWorkers) finish(w *podWorker) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.workers, w.uid)
	p.finished[w.uid] = time.Now()
}

func (p *podWorkers) stopTimer(w *podWorker) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
	}
}

func podPhaseTerminal(phase v1.PodPhase) bool {
	return phase == v1.PodSucceeded || phase == v1.PodFailed
}
