package controller

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	appsinformers "k8s.io/client-go/informers/apps/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
)

// Event reasons, as kube's replicaset controller emits them.
const (
	reasonSuccessfulCreate = "SuccessfulCreate"
	reasonFailedCreate     = "FailedCreate"
	reasonSuccessfulDelete = "SuccessfulDelete"
	reasonFailedDelete     = "FailedDelete"
)

// burstReplicas caps how many pods one sync creates or deletes, so a huge spec.replicas
// does not flood the apiserver in one go.
const burstReplicas = 500

var replicaSetKind = appsv1.SchemeGroupVersion.WithKind("ReplicaSet")

// replicaSetController keeps each ReplicaSet's active pods at spec.replicas.
type replicaSetController struct {
	client   kubernetes.Interface
	rsLister appslisters.ReplicaSetLister
	rsSynced cache.InformerSynced
	pods     corelisters.PodLister
	podsSync cache.InformerSynced
	recorder record.EventRecorder
	exp      *expectations
	queue    workqueue.TypedRateLimitingInterface[string]
	now      func() time.Time
}

func newReplicaSetController(client kubernetes.Interface, rsInformer appsinformers.ReplicaSetInformer,
	podInformer coreinformers.PodInformer, recorder record.EventRecorder) (*replicaSetController, error) {
	c := &replicaSetController{
		client:   client,
		rsLister: rsInformer.Lister(),
		rsSynced: rsInformer.Informer().HasSynced,
		pods:     podInformer.Lister(),
		podsSync: podInformer.Informer().HasSynced,
		recorder: recorder,
		exp:      newExpectations(time.Now),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "replicaset"}),
		now: time.Now,
	}
	if _, err := rsInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, obj interface{}) { c.enqueue(obj) },
		DeleteFunc: c.deleteReplicaSet,
	}); err != nil {
		return nil, fmt.Errorf("replicaset handler: %w", err)
	}
	if _, err := podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.addPod,
		UpdateFunc: c.updatePod,
		DeleteFunc: c.deletePod,
	}); err != nil {
		return nil, fmt.Errorf("pod handler: %w", err)
	}
	return c, nil
}

// run processes the queue with workers goroutines until ctx is done.
func (c *replicaSetController) run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	logger := klog.FromContext(ctx)
	logger.Info("Starting replicaset controller")
	defer logger.Info("Shutting down replicaset controller")
	if !cache.WaitForCacheSync(ctx.Done(), c.rsSynced, c.podsSync) {
		return
	}
	for range workers {
		go wait.UntilWithContext(ctx, c.worker, time.Second)
	}
	<-ctx.Done()
}

func (c *replicaSetController) worker(ctx context.Context) {
	for c.processNext(ctx) {
	}
}

func (c *replicaSetController) processNext(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	requeueAfter, err := c.sync(ctx, key)
	switch {
	case err != nil:
		utilruntime.HandleErrorWithContext(ctx, err, "Syncing replicaset failed", "key", key)
		c.queue.AddRateLimited(key)
	default:
		c.queue.Forget(key)
		if requeueAfter > 0 {
			c.queue.AddAfter(key, requeueAfter)
		}
	}
	return true
}

func (c *replicaSetController) enqueue(obj interface{}) {
	key, err := cache.MetaNamespaceKeyFunc(obj)
	if err != nil {
		utilruntime.HandleError(err)
		return
	}
	c.queue.Add(key)
}

func (c *replicaSetController) deleteReplicaSet(obj interface{}) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		utilruntime.HandleError(err)
		return
	}
	// The sync sees the ReplicaSet gone and drops its expectations; its pods are the
	// garbage collector's business.
	c.queue.Add(key)
}

// addPod notes an observed creation and wakes the owning ReplicaSet, or every ReplicaSet
// that could adopt an orphan.
func (c *replicaSetController) addPod(obj interface{}) {
	pod := obj.(*corev1.Pod)
	if pod.DeletionTimestamp != nil {
		// A restarted informer may list a pod that is already being deleted.
		c.deletePod(pod)
		return
	}
	if ref := metav1.GetControllerOf(pod); ref != nil {
		rs := c.resolveControllerRef(pod.Namespace, ref)
		if rs == nil {
			return
		}
		key := rsKey(rs)
		c.exp.creationObserved(key)
		c.queue.Add(key)
		return
	}
	for _, rs := range c.matchingReplicaSets(pod) {
		c.queue.Add(rsKey(rs))
	}
}

func (c *replicaSetController) updatePod(oldObj, newObj interface{}) {
	oldPod, newPod := oldObj.(*corev1.Pod), newObj.(*corev1.Pod)
	if oldPod.ResourceVersion == newPod.ResourceVersion {
		return // periodic resync: nothing changed
	}
	if newPod.DeletionTimestamp != nil && oldPod.DeletionTimestamp == nil {
		// A graceful deletion started: for counting, the pod is gone now.
		c.deletePod(newPod)
		return
	}
	oldRef, newRef := metav1.GetControllerOf(oldPod), metav1.GetControllerOf(newPod)
	if oldRef != nil && (newRef == nil || oldRef.UID != newRef.UID) {
		if rs := c.resolveControllerRef(oldPod.Namespace, oldRef); rs != nil {
			c.queue.Add(rsKey(rs))
		}
	}
	if newRef != nil {
		rs := c.resolveControllerRef(newPod.Namespace, newRef)
		if rs == nil {
			return
		}
		key := rsKey(rs)
		c.queue.Add(key)
		// Availability depends on how long a pod has been ready: look again once the
		// newly ready pod has been ready for minReadySeconds.
		if !podReady(oldPod) && podReady(newPod) && rs.Spec.MinReadySeconds > 0 {
			c.queue.AddAfter(key, time.Duration(rs.Spec.MinReadySeconds)*time.Second+time.Second)
		}
		return
	}
	// An orphan: if it was just released or its labels changed, someone may adopt it.
	if oldRef != nil || !labels.Equals(oldPod.Labels, newPod.Labels) {
		for _, rs := range c.matchingReplicaSets(newPod) {
			c.queue.Add(rsKey(rs))
		}
	}
}

func (c *replicaSetController) deletePod(obj interface{}) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		tombstone, isTombstone := obj.(cache.DeletedFinalStateUnknown)
		if !isTombstone {
			utilruntime.HandleError(fmt.Errorf("unexpected object in pod delete handler: %T", obj))
			return
		}
		if pod, ok = tombstone.Obj.(*corev1.Pod); !ok {
			utilruntime.HandleError(fmt.Errorf("tombstone holds %T, not a pod", tombstone.Obj))
			return
		}
	}
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return
	}
	rs := c.resolveControllerRef(pod.Namespace, ref)
	if rs == nil {
		return
	}
	key := rsKey(rs)
	c.exp.deletionObserved(key, podKey(pod))
	c.queue.Add(key)
}

// resolveControllerRef returns the ReplicaSet a controllerRef points to, if it is the same
// object (same UID) the cache knows.
func (c *replicaSetController) resolveControllerRef(namespace string, ref *metav1.OwnerReference) *appsv1.ReplicaSet {
	if ref.Kind != replicaSetKind.Kind || ref.APIVersion != replicaSetKind.GroupVersion().String() {
		return nil
	}
	rs, err := c.rsLister.ReplicaSets(namespace).Get(ref.Name)
	if err != nil || rs.UID != ref.UID {
		return nil
	}
	return rs
}

// matchingReplicaSets lists the ReplicaSets whose selector matches an orphan pod.
func (c *replicaSetController) matchingReplicaSets(pod *corev1.Pod) []*appsv1.ReplicaSet {
	all, err := c.rsLister.ReplicaSets(pod.Namespace).List(labels.Everything())
	if err != nil {
		return nil
	}
	var out []*appsv1.ReplicaSet
	for _, rs := range all {
		sel, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
		if err != nil || sel.Empty() {
			continue // an empty selector matches nothing, as in kube
		}
		if sel.Matches(labels.Set(pod.Labels)) {
			out = append(out, rs)
		}
	}
	return out
}

// sync reconciles one ReplicaSet. It returns a delay after which the ReplicaSet must be
// looked at again (for availability), or an error to retry with back-off.
func (c *replicaSetController) sync(ctx context.Context, key string) (time.Duration, error) {
	logger := klog.FromContext(ctx).WithValues("replicaset", key)
	ctx = klog.NewContext(ctx, logger)
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil // a malformed key never becomes valid
	}
	cached, err := c.rsLister.ReplicaSets(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		logger.V(4).Info("ReplicaSet is gone")
		c.exp.forget(key)
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	rs := cached.DeepCopy()
	selector, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
	if err != nil {
		// Validation rejects such selectors; nothing to retry.
		logger.Error(err, "Invalid selector")
		return 0, nil
	}
	needsSync := c.exp.satisfied(key) && rs.DeletionTimestamp == nil

	all, err := c.pods.Pods(namespace).List(labels.Everything())
	if err != nil {
		return 0, err
	}
	owned, err := c.claimPods(ctx, rs, selector, filterActivePods(all))
	if err != nil {
		return 0, err
	}
	var manageErr error
	if needsSync {
		manageErr = c.manageReplicas(ctx, owned, rs)
	}
	status := calculateStatus(rs, owned, ownedTerminating(rs, all), manageErr, c.now())
	updated, err := c.updateStatus(ctx, rs, status)
	if err != nil {
		return 0, err
	}
	if manageErr != nil {
		return 0, manageErr
	}
	if updated.Spec.MinReadySeconds > 0 && updated.Status.ReadyReplicas != updated.Status.AvailableReplicas {
		return time.Duration(updated.Spec.MinReadySeconds) * time.Second, nil
	}
	return 0, nil
}

func rsKey(rs *appsv1.ReplicaSet) string { return rs.Namespace + "/" + rs.Name }

func podKey(pod *corev1.Pod) string { return pod.Namespace + "/" + pod.Name }
