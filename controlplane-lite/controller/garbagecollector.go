package controller

import (
	"context"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
)

// ownerUIDIndex indexes dependents by the UIDs of their owners.
const ownerUIDIndex = "ownerUID"

// gcItem names one object the garbage collector should look at.
type gcItem struct {
	kind      schema.GroupKind
	namespace string
	name      string
	uid       types.UID
}

func (i gcItem) String() string {
	return fmt.Sprintf("%s %s/%s (%s)", i.kind, i.namespace, i.name, i.uid)
}

// gcKind is one kind the apiserver serves, watched through a metadata informer whose
// cache is indexed by owner UID: every kind may be an owner and a dependent.
type gcKind struct {
	servedResource
	informer cache.SharedIndexInformer
}

// garbageCollector deletes dependents whose owners are gone and implements the orphan and
// foreground deletion finalizers, for every kind discovery reports as listable,
// watchable and deletable, as kube's garbage collector does. It reads and writes objects
// through the metadata client only, so it needs no types of its own.
type garbageCollector struct {
	metadata  metadata.Interface
	discovery discovery.DiscoveryInterface
	// kinds is filled by watchKinds before the informers start, and only read after.
	kinds map[schema.GroupKind]*gcKind
	queue workqueue.TypedRateLimitingInterface[gcItem]
}

func newGarbageCollector(client metadata.Interface, disc discovery.DiscoveryInterface) *garbageCollector {
	return &garbageCollector{
		metadata:  client,
		discovery: disc,
		kinds:     map[schema.GroupKind]*gcKind{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[gcItem](),
			workqueue.TypedRateLimitingQueueConfig[gcItem]{Name: "garbage_collector"}),
	}
}

// gcVerbs are the verbs a resource needs for the collector to manage it.
var gcVerbs = []string{"list", "watch", "delete", "patch"}

// watchKinds discovers the served kinds and sets up a metadata informer for each.
func (gc *garbageCollector) watchKinds(ctx context.Context, factory metadatainformer.SharedInformerFactory) error {
	resources, err := waitForResources(ctx, gc.discovery, false, gcVerbs)
	if err != nil {
		return err
	}
	for _, r := range resources {
		if err := gc.addKind(r, factory.ForResource(r.gvr).Informer()); err != nil {
			return err
		}
	}
	return nil
}

// addKind watches one kind through informer.
func (gc *garbageCollector) addKind(r servedResource, informer cache.SharedIndexInformer) error {
	k := &gcKind{servedResource: r, informer: informer}
	if err := informer.AddIndexers(cache.Indexers{ownerUIDIndex: indexByOwnerUID}); err != nil {
		return fmt.Errorf("index %s by owner: %w", r.kind, err)
	}
	if _, err := informer.AddEventHandler(gc.handlerFor(k)); err != nil {
		return fmt.Errorf("%s handler: %w", r.kind, err)
	}
	gc.kinds[r.kind] = k
	return nil
}

// client is the metadata client of k's objects in namespace.
func (gc *garbageCollector) client(k *gcKind, namespace string) metadata.ResourceInterface {
	if !k.namespaced {
		return gc.metadata.Resource(k.gvr)
	}
	return gc.metadata.Resource(k.gvr).Namespace(namespace)
}

func (gc *garbageCollector) get(ctx context.Context, k *gcKind, namespace, name string) (metav1.Object, error) {
	return gc.client(k, namespace).Get(ctx, name, metav1.GetOptions{})
}

func (gc *garbageCollector) patch(ctx context.Context, k *gcKind, namespace, name string, pt types.PatchType, data []byte) error {
	_, err := gc.client(k, namespace).Patch(ctx, name, pt, data, metav1.PatchOptions{})
	return err
}

func indexByOwnerUID(obj interface{}) ([]string, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	uids := make([]string, 0, len(m.GetOwnerReferences()))
	for _, ref := range m.GetOwnerReferences() {
		uids = append(uids, string(ref.UID))
	}
	return uids, nil
}

func (gc *garbageCollector) handlerFor(k *gcKind) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj interface{}) {
			if m, err := meta.Accessor(obj); err == nil && needsAttention(m) {
				gc.queue.Add(gc.itemFor(k, m))
			}
		},
		UpdateFunc: func(oldObj, newObj interface{}) {
			oldM, err1 := meta.Accessor(oldObj)
			newM, err2 := meta.Accessor(newObj)
			if err1 != nil || err2 != nil {
				return
			}
			if needsAttention(newM) {
				gc.queue.Add(gc.itemFor(k, newM))
			}
			// An owner in foreground deletion waits for its dependents: wake it when one
			// starts going away or lets go of it.
			if oldM.GetDeletionTimestamp() == nil && newM.GetDeletionTimestamp() != nil ||
				!slices.EqualFunc(oldM.GetOwnerReferences(), newM.GetOwnerReferences(), sameOwner) {
				gc.enqueueOwners(oldM)
			}
		},
		DeleteFunc: func(obj interface{}) {
			if tombstone, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tombstone.Obj
			}
			m, err := meta.Accessor(obj)
			if err != nil {
				return
			}
			gc.enqueueDependents(m.GetUID())
			gc.enqueueOwners(m)
		},
	}
}

func sameOwner(a, b metav1.OwnerReference) bool {
	return a.UID == b.UID && ptrBool(a.BlockOwnerDeletion) == ptrBool(b.BlockOwnerDeletion)
}

func ptrBool(b *bool) bool { return b != nil && *b }

// needsAttention reports whether obj could need garbage collection work: it has owners
// to verify, or it is being deleted with a finalizer the collector implements.
func needsAttention(m metav1.Object) bool {
	if len(m.GetOwnerReferences()) > 0 {
		return true
	}
	if m.GetDeletionTimestamp() == nil {
		return false
	}
	f := m.GetFinalizers()
	return slices.Contains(f, metav1.FinalizerOrphanDependents) || slices.Contains(f, metav1.FinalizerDeleteDependents)
}

func (gc *garbageCollector) itemFor(k *gcKind, m metav1.Object) gcItem {
	return gcItem{kind: k.kind, namespace: m.GetNamespace(), name: m.GetName(), uid: m.GetUID()}
}

func (gc *garbageCollector) enqueueOwners(m metav1.Object) {
	for _, ref := range m.GetOwnerReferences() {
		if item, ok := gc.ownerItem(m.GetNamespace(), ref); ok {
			gc.queue.Add(item)
		}
	}
}

func (gc *garbageCollector) enqueueDependents(uid types.UID) {
	for _, dep := range gc.dependents(uid) {
		gc.queue.Add(dep.item)
	}
}

// ownerItem resolves an ownerReference of an object in namespace to an item, if the
// collector knows the owner's kind.
func (gc *garbageCollector) ownerItem(namespace string, ref metav1.OwnerReference) (gcItem, bool) {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return gcItem{}, false
	}
	// The collector watches each kind in its preferred version; a reference in
	// another version names the same object.
	k, ok := gc.kinds[schema.GroupKind{Group: gv.Group, Kind: ref.Kind}]
	if !ok {
		return gcItem{}, false
	}
	if !k.namespaced {
		namespace = ""
	}
	return gcItem{kind: k.kind, namespace: namespace, name: ref.Name, uid: ref.UID}, true
}

// dependent is a cached object that names some owner in its ownerReferences.
type dependent struct {
	item gcItem
	obj  metav1.Object
	ref  metav1.OwnerReference // its reference to that owner
}

// dependents lists the cached objects owned by uid.
func (gc *garbageCollector) dependents(uid types.UID) []dependent {
	var out []dependent
	for _, k := range gc.kinds {
		objs, err := k.informer.GetIndexer().ByIndex(ownerUIDIndex, string(uid))
		if err != nil {
			continue
		}
		for _, obj := range objs {
			m, err := meta.Accessor(obj)
			if err != nil {
				continue
			}
			for _, ref := range m.GetOwnerReferences() {
				if ref.UID == uid {
					out = append(out, dependent{item: gc.itemFor(k, m), obj: m, ref: ref})
					break
				}
			}
		}
	}
	return out
}

func (gc *garbageCollector) run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	defer gc.queue.ShutDown()
	logger := klog.FromContext(ctx)
	logger.Info("Starting garbage collector")
	defer logger.Info("Shutting down garbage collector")
	factory := metadatainformer.NewSharedInformerFactory(gc.metadata, 0)
	if err := gc.watchKinds(ctx, factory); err != nil {
		utilruntime.HandleErrorWithContext(ctx, err, "Garbage collector cannot watch the served kinds")
		return
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	logger.V(2).Info("Watching kinds", "count", len(gc.kinds))
	synced := make([]cache.InformerSynced, 0, len(gc.kinds))
	for _, k := range gc.kinds {
		synced = append(synced, k.informer.HasSynced)
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return
	}
	for range workers {
		go wait.UntilWithContext(ctx, gc.worker, time.Second)
	}
	<-ctx.Done()
}

func (gc *garbageCollector) worker(ctx context.Context) {
	for gc.processNext(ctx) {
	}
}

func (gc *garbageCollector) processNext(ctx context.Context) bool {
	item, quit := gc.queue.Get()
	if quit {
		return false
	}
	defer gc.queue.Done(item)
	if err := gc.process(ctx, item); err != nil {
		utilruntime.HandleErrorWithContext(ctx, err, "Garbage collection failed", "item", item.String())
		gc.queue.AddRateLimited(item)
		return true
	}
	gc.queue.Forget(item)
	return true
}

// process looks at one object: as an owner being deleted with a finalizer the collector
// implements, or as a dependent whose owners may be gone.
func (gc *garbageCollector) process(ctx context.Context, item gcItem) error {
	k := gc.kinds[item.kind]
	obj := gc.cached(k, item.namespace, item.name)
	if obj == nil || obj.GetUID() != item.uid {
		return nil // gone, or replaced by a namesake that gets its own item
	}
	logger := klog.FromContext(ctx).WithValues("kind", item.kind.String(), "object", klog.KObj(obj))
	ctx = klog.NewContext(ctx, logger)
	if obj.GetDeletionTimestamp() != nil {
		switch {
		case slices.Contains(obj.GetFinalizers(), metav1.FinalizerOrphanDependents):
			return gc.orphanDependents(ctx, k, obj)
		case slices.Contains(obj.GetFinalizers(), metav1.FinalizerDeleteDependents):
			return gc.deleteDependentsFirst(ctx, k, obj)
		}
		return nil
	}
	if len(obj.GetOwnerReferences()) == 0 {
		return nil
	}
	return gc.attemptToDelete(ctx, k, obj)
}

func (gc *garbageCollector) cached(k *gcKind, namespace, name string) metav1.Object {
	key := name
	if namespace != "" {
		key = namespace + "/" + name
	}
	obj, exists, err := k.informer.GetIndexer().GetByKey(key)
	if err != nil || !exists {
		return nil
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil
	}
	return m
}

// ownerState classifies one owner of a dependent.
type ownerState int

const (
	ownerSolid    ownerState = iota // exists and is not waiting for its dependents
	ownerDangling                   // gone, or replaced by another object of that name
	ownerWaiting                    // being deleted in the foreground
)

// classifyOwner looks an owner up in the cache and, when the cache does not confirm it,
// live: a missing owner is only trusted from the apiserver, since a freshly created owner
// may not have reached the informer yet.
func (gc *garbageCollector) classifyOwner(ctx context.Context, namespace string, ref metav1.OwnerReference) (ownerState, error) {
	item, known := gc.ownerItem(namespace, ref)
	if !known {
		return ownerSolid, nil // a kind skiff does not serve: leave its dependents alone
	}
	k := gc.kinds[item.kind]
	owner := gc.cached(k, item.namespace, item.name)
	if owner == nil || owner.GetUID() != ref.UID {
		live, err := gc.get(ctx, k, item.namespace, item.name)
		switch {
		case apierrors.IsNotFound(err):
			return ownerDangling, nil
		case err != nil:
			return ownerSolid, fmt.Errorf("get owner %s: %w", item, err)
		}
		if live.GetUID() != ref.UID {
			return ownerDangling, nil
		}
		owner = live
	}
	if owner.GetDeletionTimestamp() != nil && slices.Contains(owner.GetFinalizers(), metav1.FinalizerDeleteDependents) {
		return ownerWaiting, nil
	}
	return ownerSolid, nil
}

// attemptToDelete deletes a dependent none of whose owners exist any more, or drops the
// references to missing owners of a dependent that still has a live one.
func (gc *garbageCollector) attemptToDelete(ctx context.Context, k *gcKind, obj metav1.Object) error {
	var solid int
	var stale []types.UID
	waiting := false
	for _, ref := range obj.GetOwnerReferences() {
		state, err := gc.classifyOwner(ctx, obj.GetNamespace(), ref)
		if err != nil {
			return err
		}
		switch state {
		case ownerSolid:
			solid++
		case ownerWaiting:
			waiting = true
			stale = append(stale, ref.UID)
		case ownerDangling:
			stale = append(stale, ref.UID)
		}
	}
	logger := klog.FromContext(ctx)
	if solid > 0 {
		if len(stale) == 0 {
			return nil
		}
		// The object stays: forget the owners that are gone or waiting for it.
		logger.V(2).Info("Removing references to missing owners", "remaining", solid)
		return gc.removeOwners(ctx, k, obj, stale...)
	}
	policy := metav1.DeletePropagationBackground
	switch {
	case waiting && len(gc.dependents(obj.GetUID())) > 0:
		// An owner waits for this object; its own dependents must go first too.
		policy = metav1.DeletePropagationForeground
	case slices.Contains(obj.GetFinalizers(), metav1.FinalizerOrphanDependents):
		policy = metav1.DeletePropagationOrphan
	case slices.Contains(obj.GetFinalizers(), metav1.FinalizerDeleteDependents):
		policy = metav1.DeletePropagationForeground
	}
	return gc.deleteObject(ctx, k, obj, policy)
}

// deleteObject deletes obj after checking live that its owners did not change since the
// cache saw it (it may have been adopted meanwhile).
func (gc *garbageCollector) deleteObject(ctx context.Context, k *gcKind, obj metav1.Object,
	policy metav1.DeletionPropagation) error {
	live, err := gc.get(ctx, k, obj.GetNamespace(), obj.GetName())
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get %s %s: %w", k.kind, obj.GetName(), err)
	}
	if live.GetUID() != obj.GetUID() {
		return nil
	}
	if !slices.EqualFunc(live.GetOwnerReferences(), obj.GetOwnerReferences(), sameOwner) {
		return fmt.Errorf("owners of %s %s changed, looking again", k.kind, obj.GetName())
	}
	uid := obj.GetUID()
	klog.FromContext(ctx).V(2).Info("Deleting object whose owners are gone", "propagationPolicy", policy)
	err = gc.client(k, obj.GetNamespace()).Delete(ctx, obj.GetName(), metav1.DeleteOptions{
		Preconditions:     &metav1.Preconditions{UID: &uid},
		PropagationPolicy: &policy,
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete %s %s: %w", k.kind, obj.GetName(), err)
	}
	return nil
}

// orphanDependents removes owner from its dependents' ownerReferences, then the orphan
// finalizer from owner.
func (gc *garbageCollector) orphanDependents(ctx context.Context, k *gcKind, owner metav1.Object) error {
	for _, dep := range gc.dependents(owner.GetUID()) {
		err := gc.removeOwners(ctx, gc.kinds[dep.item.kind], dep.obj, owner.GetUID())
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("orphan %s: %w", dep.item, err)
		}
	}
	klog.FromContext(ctx).V(2).Info("Orphaned dependents")
	return gc.removeFinalizer(ctx, k, owner, metav1.FinalizerOrphanDependents)
}

// deleteDependentsFirst handles an owner in foreground deletion: it lets the dependents
// that block it be collected, and removes the finalizer once none are left.
func (gc *garbageCollector) deleteDependentsFirst(ctx context.Context, k *gcKind, owner metav1.Object) error {
	blocking := 0
	for _, dep := range gc.dependents(owner.GetUID()) {
		if !ptrBool(dep.ref.BlockOwnerDeletion) {
			continue
		}
		blocking++
		if dep.obj.GetDeletionTimestamp() == nil {
			gc.queue.Add(dep.item)
		}
	}
	if blocking > 0 {
		klog.FromContext(ctx).V(4).Info("Waiting for blocking dependents", "count", blocking)
		return nil // their deletion events bring the owner back
	}
	return gc.removeFinalizer(ctx, k, owner, metav1.FinalizerDeleteDependents)
}

// removeOwners drops the references to owners from obj with a JSON merge patch (the
// metadata client's kinds need not know strategic merge) that names the resourceVersion
// the cache saw: a conflict brings the item back to be looked at again.
func (gc *garbageCollector) removeOwners(ctx context.Context, k *gcKind, obj metav1.Object, owners ...types.UID) error {
	kept := slices.DeleteFunc(slices.Clone(obj.GetOwnerReferences()), func(ref metav1.OwnerReference) bool {
		return slices.Contains(owners, ref.UID)
	})
	patch, err := ownerRefsPatch(obj.GetUID(), obj.GetResourceVersion(), kept)
	if err != nil {
		return err
	}
	if err := gc.patch(ctx, k, obj.GetNamespace(), obj.GetName(), types.MergePatchType, patch); err != nil {
		return fmt.Errorf("remove owners of %s %s: %w", k.kind, obj.GetName(), err)
	}
	return nil
}

// removeFinalizer removes finalizer from obj, rereading the object when another writer
// got there first (a conflict), as kube's garbage collector does.
func (gc *garbageCollector) removeFinalizer(ctx context.Context, k *gcKind, obj metav1.Object, finalizer string) error {
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		kept := slices.DeleteFunc(slices.Clone(obj.GetFinalizers()), func(f string) bool { return f == finalizer })
		if len(kept) == len(obj.GetFinalizers()) {
			return nil // someone else removed it
		}
		patch, err := finalizersPatch(obj.GetUID(), obj.GetResourceVersion(), kept)
		if err != nil {
			return err
		}
		err = gc.patch(ctx, k, obj.GetNamespace(), obj.GetName(), types.MergePatchType, patch)
		if !apierrors.IsConflict(err) {
			return err
		}
		fresh, getErr := gc.get(ctx, k, obj.GetNamespace(), obj.GetName())
		if getErr != nil {
			return getErr
		}
		if fresh.GetUID() != obj.GetUID() {
			return nil // replaced by a namesake: our object is gone
		}
		obj = fresh
		return err
	})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("remove finalizer %s from %s %s: %w", finalizer, k.kind, obj.GetName(), err)
	}
	klog.FromContext(ctx).V(2).Info("Removed finalizer", "finalizer", finalizer)
	return nil
}
