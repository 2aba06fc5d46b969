package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
)

// Namespace cleanup timing: how often the cache is swept for leftovers of namespaces
// deleted while no controller ran, and how soon a namespace still being finalized is
// looked at again.
const (
	namespaceSweepPeriod = time.Minute
	namespaceRecheck     = 5 * time.Second
)

// namespaceCleaner is kube's namespace controller: a namespace being deleted stays
// Terminating with the "kubernetes" finalizer until the cleaner has deleted every object
// of every namespaced kind the apiserver serves in it (found through discovery, deleted
// through the metadata client), then it removes the finalizer through
// namespaces/finalize and the apiserver removes the namespace. It also empties
// namespaces that are gone but left objects behind (deleted before it ran).
type namespaceCleaner struct {
	client     kubernetes.Interface
	metadata   metadata.Interface
	namespaces corelisters.NamespaceLister
	pods       corelisters.PodLister
	rss        appslisters.ReplicaSetLister
	synced     []cache.InformerSynced
	queue      workqueue.TypedRateLimitingInterface[string]
}

func newNamespaceCleaner(client kubernetes.Interface, meta metadata.Interface, factory informers.SharedInformerFactory) (*namespaceCleaner, error) {
	nsInformer := factory.Core().V1().Namespaces()
	c := &namespaceCleaner{
		client:     client,
		metadata:   meta,
		namespaces: nsInformer.Lister(),
		pods:       factory.Core().V1().Pods().Lister(),
		rss:        factory.Apps().V1().ReplicaSets().Lister(),
		synced: []cache.InformerSynced{
			nsInformer.Informer().HasSynced,
			factory.Core().V1().Pods().Informer().HasSynced,
			factory.Apps().V1().ReplicaSets().Informer().HasSynced,
		},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "namespace"}),
	}
	queueTerminating := func(obj interface{}) {
		if ns := obj.(*corev1.Namespace); ns.DeletionTimestamp != nil {
			c.queue.Add(ns.Name)
		}
	}
	_, err := nsInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		// A namespace already terminating when the informer lists (deleted before the
		// controller started, or while it was down) arrives as an add.
		AddFunc:    queueTerminating,
		UpdateFunc: func(_, obj interface{}) { queueTerminating(obj) },
		DeleteFunc: func(obj interface{}) {
			if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
				c.queue.Add(key)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("namespace handler: %w", err)
	}
	return c, nil
}

func (c *namespaceCleaner) run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	logger := klog.FromContext(ctx)
	logger.Info("Starting namespace cleaner")
	defer logger.Info("Shutting down namespace cleaner")
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return
	}
	for range workers {
		go wait.UntilWithContext(ctx, c.worker, time.Second)
	}
	wait.UntilWithContext(ctx, func(context.Context) { c.sweep() }, namespaceSweepPeriod)
}

// sweep queues the namespaces that cached objects live in but that do not exist (deleted
// while no controller was watching).
func (c *namespaceCleaner) sweep() {
	seen := sets.New[string]()
	if pods, err := c.pods.List(labels.Everything()); err == nil {
		for _, p := range pods {
			seen.Insert(p.Namespace)
		}
	}
	if rss, err := c.rss.List(labels.Everything()); err == nil {
		for _, rs := range rss {
			seen.Insert(rs.Namespace)
		}
	}
	for ns := range seen {
		if _, err := c.namespaces.Get(ns); apierrors.IsNotFound(err) {
			c.queue.Add(ns)
		}
	}
}

func (c *namespaceCleaner) worker(ctx context.Context) {
	for c.processNext(ctx) {
	}
}

func (c *namespaceCleaner) processNext(ctx context.Context) bool {
	ns, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(ns)
	requeue, err := c.clean(ctx, ns)
	switch {
	case err != nil:
		utilruntime.HandleErrorWithContext(ctx, err, "Cleaning up namespace failed", "namespace", ns)
		c.queue.AddRateLimited(ns)
	case requeue:
		c.queue.Forget(ns)
		c.queue.AddAfter(ns, namespaceRecheck)
	default:
		c.queue.Forget(ns)
	}
	return true
}

// clean deletes the contents of namespace if it is gone or terminating. It reports
// whether a terminating namespace must be looked at again.
func (c *namespaceCleaner) clean(ctx context.Context, namespace string) (bool, error) {
	live, err := c.client.CoreV1().Namespaces().Get(ctx, namespace, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		live = nil
	case err != nil:
		return false, fmt.Errorf("get namespace %s: %w", namespace, err)
	case live.DeletionTimestamp == nil:
		return false, nil // exists (or was recreated): leave it alone
	}
	logger := klog.FromContext(ctx).WithValues("namespace", namespace)
	remaining, err := c.deleteContents(klog.NewContext(ctx, logger), namespace)
	if err != nil {
		return false, err
	}
	if live == nil {
		return false, nil
	}
	if remaining > 0 {
		return true, nil // wait for graceful deletions to finish
	}
	return false, c.finalize(ctx, live)
}

// namespaceVerbs are the verbs the cleaner needs of a resource to empty a namespace.
var namespaceVerbs = []string{"list", "delete"}

// deleteContents deletes every object of every namespaced kind the apiserver serves in
// namespace, and returns how many still exist (being deleted gracefully, or just deleted).
func (c *namespaceCleaner) deleteContents(ctx context.Context, namespace string) (int, error) {
	resources, err := servedResources(c.client.Discovery(), true, namespaceVerbs)
	if err != nil {
		// Some groups failed discovery: empty what is known, and come back for the rest
		// before finalizing.
		remaining, delErr := c.deleteResources(ctx, namespace, resources)
		return remaining, errors.Join(err, delErr)
	}
	return c.deleteResources(ctx, namespace, resources)
}

func (c *namespaceCleaner) deleteResources(ctx context.Context, namespace string, resources []servedResource) (int, error) {
	remaining := 0
	var errs []error
	for _, r := range resources {
		n, err := c.deleteResource(ctx, namespace, r)
		remaining += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	return remaining, errors.Join(errs...)
}

// deleteResource deletes the objects of one resource in namespace, each with its UID as
// precondition and background propagation, and returns how many there were.
func (c *namespaceCleaner) deleteResource(ctx context.Context, namespace string, r servedResource) (int, error) {
	client := c.metadata.Resource(r.gvr).Namespace(namespace)
	list, err := client.List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, fmt.Errorf("list %s in %s: %w", r.gvr.Resource, namespace, err)
	}
	background := metav1.DeletePropagationBackground
	deleted := 0
	var errs []error
	for i := range list.Items {
		obj := &list.Items[i]
		if obj.DeletionTimestamp != nil {
			continue
		}
		deleted++
		uid := obj.UID
		err := client.Delete(ctx, obj.Name, metav1.DeleteOptions{
			PropagationPolicy: &background,
			Preconditions:     &metav1.Preconditions{UID: &uid},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, fmt.Errorf("delete %s %s/%s: %w", r.gvr.Resource, namespace, obj.Name, err))
		}
	}
	if deleted > 0 {
		klog.FromContext(ctx).V(2).Info("Deleting contents of namespace", "resource", r.gvr.Resource, "count", deleted)
	}
	return len(list.Items), errors.Join(errs...)
}

// finalize removes the "kubernetes" finalizer of an emptied, terminating namespace.
func (c *namespaceCleaner) finalize(ctx context.Context, ns *corev1.Namespace) error {
	if !slices.Contains(ns.Spec.Finalizers, corev1.FinalizerKubernetes) {
		return nil
	}
	updated := ns.DeepCopy()
	updated.Spec.Finalizers = slices.DeleteFunc(updated.Spec.Finalizers,
		func(f corev1.FinalizerName) bool { return f == corev1.FinalizerKubernetes })
	_, err := c.client.CoreV1().Namespaces().Finalize(ctx, updated, metav1.UpdateOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("finalize namespace %s: %w", ns.Name, err)
	}
	return nil
}
