package scheduler

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
)

// DefaultSchedulerName is the spec.schedulerName the apiserver defaults pods to.
const DefaultSchedulerName = corev1.DefaultSchedulerName

// Back-off between attempts for a pod that does not fit, kube's defaults.
const (
	initialBackoff = time.Second
	maxBackoff     = 10 * time.Second
)

// Config configures a Scheduler.
type Config struct {
	// Client talks to the apiserver. Required.
	Client kubernetes.Interface
	// SchedulerName selects the pods this scheduler handles; "" means "default-scheduler".
	SchedulerName string
}

// Scheduler binds unscheduled pods to nodes.
type Scheduler struct {
	client      kubernetes.Interface
	name        string
	factory     informers.SharedInformerFactory
	pods        corelisters.PodLister
	synced      []cache.InformerSynced
	queue       workqueue.TypedRateLimitingInterface[string]
	cache       *schedCache
	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder
	now         func() time.Time
	rand        *rand.Rand // used by the single scheduling goroutine only

	mu            sync.Mutex
	unschedulable sets.Set[string] // pods waiting for the cluster to change
	started       bool
	binds         sync.WaitGroup
}

// New validates cfg and wires the informers; nothing talks to the apiserver until Run.
func New(cfg Config) (*Scheduler, error) {
	if cfg.Client == nil {
		return nil, errors.New("scheduler: Config.Client is required")
	}
	if cfg.SchedulerName == "" {
		cfg.SchedulerName = DefaultSchedulerName
	}
	broadcaster := record.NewBroadcaster()
	s := &Scheduler{
		client:  cfg.Client,
		name:    cfg.SchedulerName,
		factory: informers.NewSharedInformerFactory(cfg.Client, 0),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](initialBackoff, maxBackoff),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "scheduler"}),
		cache:         newSchedCache(time.Now),
		broadcaster:   broadcaster,
		recorder:      broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: cfg.SchedulerName}),
		now:           time.Now,
		rand:          rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		unschedulable: sets.New[string](),
	}
	// One pod informer serves both halves: unscheduled pods to place, and bound pods whose
	// requests count against their nodes. Terminal pods are ignored in the handlers.
	podInformer := s.factory.Core().V1().Pods()
	nodeInformer := s.factory.Core().V1().Nodes()
	s.pods = podInformer.Lister()
	s.synced = []cache.InformerSynced{podInformer.Informer().HasSynced, nodeInformer.Informer().HasSynced}
	if _, err := podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    s.onPod,
		UpdateFunc: s.onPodUpdate,
		DeleteFunc: s.onPodDelete,
	}); err != nil {
		return nil, fmt.Errorf("scheduler: pod handler: %w", err)
	}
	if _, err := nodeInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    s.onNode,
		UpdateFunc: s.onNodeUpdate,
		DeleteFunc: s.onNodeDelete,
	}); err != nil {
		return nil, fmt.Errorf("scheduler: node handler: %w", err)
	}
	return s, nil
}

// Run starts the informers and schedules pods until ctx is done. It may be called once.
func (s *Scheduler) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("scheduler: Run called twice")
	}
	s.started = true
	s.mu.Unlock()

	logger := klog.FromContext(ctx).WithValues("scheduler", s.name)
	ctx = klog.NewContext(ctx, logger)
	logger.Info("Starting scheduler")
	defer logger.Info("Shutting down scheduler")
	s.broadcaster.StartStructuredLogging(3)
	s.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: s.client.CoreV1().Events("")})
	defer s.broadcaster.Shutdown()

	s.factory.Start(ctx.Done())
	defer s.factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), s.synced...) {
		s.queue.ShutDown()
		return nil // ctx ended before the caches synced: a normal shutdown
	}
	go wait.UntilWithContext(ctx, func(context.Context) { s.cache.cleanupExpired() }, time.Second)
	// One goroutine decides, so each decision sees every earlier assumption; bindings run
	// in the background.
	var loop sync.WaitGroup
	loop.Go(func() {
		for s.processNext(ctx) {
		}
	})
	<-ctx.Done()
	s.queue.ShutDown()
	loop.Wait()
	s.binds.Wait()
	return nil
}

// responsible reports whether this scheduler should place pod.
func (s *Scheduler) responsible(pod *corev1.Pod) bool {
	name := pod.Spec.SchedulerName
	if name == "" {
		name = DefaultSchedulerName
	}
	return name == s.name && pod.Spec.NodeName == "" && pod.DeletionTimestamp == nil && !terminal(pod)
}

func (s *Scheduler) onPod(obj interface{}) {
	pod := obj.(*corev1.Pod)
	if pod.Spec.NodeName != "" {
		if freed := s.cache.setPod(pod); freed {
			s.moveAllToActive() // a finished pod gave its requests back
		}
		return
	}
	if s.responsible(pod) {
		s.queue.Add(cache.MetaObjectToName(pod).String())
	}
}

func (s *Scheduler) onPodUpdate(oldObj, newObj interface{}) {
	oldPod, newPod := oldObj.(*corev1.Pod), newObj.(*corev1.Pod)
	if newPod.Spec.NodeName == "" && s.responsible(oldPod) &&
		apiequality.Semantic.DeepEqual(oldPod.Spec, newPod.Spec) &&
		apiequality.Semantic.DeepEqual(oldPod.Labels, newPod.Labels) {
		// A status-only change (such as our own PodScheduled=False condition) cannot make
		// the pod fit anywhere: leave it to its back-off.
		return
	}
	s.onPod(newPod)
}

func (s *Scheduler) onPodDelete(obj interface{}) {
	if tombstone, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tombstone.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	s.cache.removePod(pod.UID)
	key := cache.MetaObjectToName(pod).String()
	s.mu.Lock()
	s.unschedulable.Delete(key)
	s.mu.Unlock()
	if pod.Spec.NodeName != "" {
		s.moveAllToActive()
	}
}

func (s *Scheduler) onNode(obj interface{}) {
	s.cache.setNode(obj.(*corev1.Node))
	s.moveAllToActive()
}

func (s *Scheduler) onNodeUpdate(oldObj, newObj interface{}) {
	oldNode, newNode := oldObj.(*corev1.Node), newObj.(*corev1.Node)
	s.cache.setNode(newNode)
	if schedulingRelevantChange(oldNode, newNode) {
		s.moveAllToActive()
	}
}

func (s *Scheduler) onNodeDelete(obj interface{}) {
	if tombstone, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tombstone.Obj
	}
	if node, ok := obj.(*corev1.Node); ok {
		s.cache.removeNode(node.Name)
	}
}

// schedulingRelevantChange ignores heartbeat-only status updates, which come every few
// seconds from each node.
func schedulingRelevantChange(a, b *corev1.Node) bool {
	return !apiequality.Semantic.DeepEqual(a.Status.Allocatable, b.Status.Allocatable) ||
		!apiequality.Semantic.DeepEqual(a.Spec.Taints, b.Spec.Taints) ||
		a.Spec.Unschedulable != b.Spec.Unschedulable ||
		!apiequality.Semantic.DeepEqual(a.Labels, b.Labels) ||
		readyStatus(a) != readyStatus(b)
}

func readyStatus(node *corev1.Node) corev1.ConditionStatus {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return corev1.ConditionUnknown
}

// moveAllToActive retries every pod that did not fit, now that the cluster changed.
func (s *Scheduler) moveAllToActive() {
	s.mu.Lock()
	keys := s.unschedulable.UnsortedList()
	s.unschedulable.Clear()
	s.mu.Unlock()
	for _, key := range keys {
		s.queue.Add(key)
	}
}

func (s *Scheduler) processNext(ctx context.Context) bool {
	key, quit := s.queue.Get()
	if quit {
		return false
	}
	defer s.queue.Done(key)
	if err := s.scheduleOne(ctx, key); err != nil {
		var fe *fitError
		if !errors.As(err, &fe) {
			utilruntime.HandleErrorWithContext(ctx, err, "Scheduling failed", "pod", key)
		}
		s.mu.Lock()
		s.unschedulable.Insert(key)
		s.mu.Unlock()
		s.queue.AddRateLimited(key)
		return true
	}
	s.queue.Forget(key)
	return true
}

// scheduleOne places one pod: it picks a node, assumes the pod there and binds it in the
// background.
func (s *Scheduler) scheduleOne(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := s.pods.Pods(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !s.responsible(pod) || s.cache.isAssumed(pod.UID) {
		return nil // bound meanwhile, or its binding is in flight
	}
	logger := klog.FromContext(ctx).WithValues("pod", klog.KObj(pod))
	ctx = klog.NewContext(ctx, logger)
	node, err := s.selectAndAssume(pod)
	if err != nil {
		logger.V(2).Info("Unable to schedule pod", "reason", err.Error())
		s.recordFailure(ctx, pod, corev1.PodReasonUnschedulable, err.Error())
		return err
	}
	s.binds.Go(func() { s.bind(ctx, pod, node) })
	return nil
}

// selectAndAssume runs the filters and the score over every node under the cache lock
// and assumes pod on the best node, ties broken at random.
func (s *Scheduler) selectAndAssume(pod *corev1.Pod) (string, error) {
	s.cache.mu.Lock()
	defer s.cache.mu.Unlock()
	pi := newPodInfo(pod)
	fe := &fitError{reasons: map[string]int{}, preemption: map[string]int{},
		preemptNever: pod.Spec.PreemptionPolicy != nil && *pod.Spec.PreemptionPolicy == corev1.PreemptNever}
	best, bestScore, ties := "", int64(-1), 0
	for name, ni := range s.cache.nodes {
		if ni.node == nil {
			continue
		}
		fe.numNodes++
		if reasons := filter(pi, ni); len(reasons) > 0 {
			for _, r := range reasons {
				fe.reasons[r]++
			}
			fe.preemption[preemptionVerdict(pi, ni, reasons)]++
			continue
		}
		score := leastAllocatedScore(pi, ni)
		switch {
		case score > bestScore:
			best, bestScore, ties = name, score, 1
		case score == bestScore:
			// Reservoir sampling: each of the tied nodes wins with equal chance.
			ties++
			if s.rand.IntN(ties) == 0 {
				best = name
			}
		}
	}
	if best == "" {
		return "", fe
	}
	assumed := pod.DeepCopy()
	assumed.Spec.NodeName = best
	s.cache.assumeLocked(assumed, best)
	return best, nil
}

func (s *Scheduler) bind(ctx context.Context, pod *corev1.Pod, node string) {
	logger := klog.FromContext(ctx)
	binding := &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: node},
	}
	err := s.client.CoreV1().Pods(pod.Namespace).Bind(ctx, binding, metav1.CreateOptions{})
	if err != nil {
		s.cache.forget(pod.UID)
		if ctx.Err() != nil {
			return
		}
		logger.Error(err, "Binding failed", "node", node)
		s.recordFailure(ctx, pod, corev1.PodReasonSchedulerError, fmt.Sprintf("Binding rejected: %v", err))
		key := cache.MetaObjectToName(pod).String()
		s.queue.AddRateLimited(key)
		return
	}
	s.cache.finishBinding(pod.UID)
	logger.V(2).Info("Bound pod", "node", node)
	s.recorder.Eventf(pod, corev1.EventTypeNormal, "Scheduled", "Successfully assigned %v/%v to %v",
		pod.Namespace, pod.Name, node)
}

// recordFailure emits a FailedScheduling event and sets the PodScheduled=False condition,
// unless the pod already carries the same one.
func (s *Scheduler) recordFailure(ctx context.Context, pod *corev1.Pod, reason, message string) {
	s.recorder.Event(pod, corev1.EventTypeWarning, "FailedScheduling", message)
	cond := corev1.PodCondition{
		Type:    corev1.PodScheduled,
		Status:  corev1.ConditionFalse,
		Reason:  reason,
		Message: message,
	}
	updated := pod.DeepCopy()
	if !setCondition(&updated.Status, cond, metav1.NewTime(s.now())) {
		return
	}
	_, err := s.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		klog.FromContext(ctx).Error(err, "Recording scheduling failure")
	}
}

// setCondition sets cond in status and reports whether anything changed. The transition
// time moves only when the condition's status does.
func setCondition(status *corev1.PodStatus, cond corev1.PodCondition, now metav1.Time) bool {
	for i := range status.Conditions {
		old := &status.Conditions[i]
		if old.Type != cond.Type {
			continue
		}
		if old.Status == cond.Status && old.Reason == cond.Reason && old.Message == cond.Message {
			return false
		}
		cond.LastTransitionTime = old.LastTransitionTime
		if old.Status != cond.Status {
			cond.LastTransitionTime = now
		}
		cond.LastProbeTime = old.LastProbeTime
		*old = cond
		return true
	}
	cond.LastTransitionTime = now
	status.Conditions = append(status.Conditions, cond)
	return true
}
