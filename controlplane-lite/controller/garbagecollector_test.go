package controller

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientscheme "k8s.io/client-go/kubernetes/scheme"
	metadatafake "k8s.io/client-go/metadata/fake"
	"k8s.io/client-go/metadata/metadatainformer"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/klog/v2/ktesting"
)

type gcFixture struct {
	client *metadatafake.FakeMetadataClient
	gc     *garbageCollector
	ctx    context.Context
}

// gcTestResources are the kinds the fixture's collector watches, as discovery of the
// skiff apiserver would report them.
var gcTestResources = []servedResource{
	{gvr: corev1.SchemeGroupVersion.WithResource("pods"), kind: schema.GroupKind{Kind: "Pod"}, namespaced: true},
	{gvr: appsv1.SchemeGroupVersion.WithResource("replicasets"), kind: schema.GroupKind{Group: "apps", Kind: "ReplicaSet"}, namespaced: true},
	{gvr: coordinationv1.SchemeGroupVersion.WithResource("leases"), kind: schema.GroupKind{Group: "coordination.k8s.io", Kind: "Lease"}, namespaced: true},
	{gvr: corev1.SchemeGroupVersion.WithResource("nodes"), kind: schema.GroupKind{Kind: "Node"}},
}

// newGCFixture builds a collector over cached (what the informers hold) and live (what
// the apiserver holds) objects, both given as typed objects and kept as metadata.
func newGCFixture(t *testing.T, cached []runtime.Object, live ...runtime.Object) *gcFixture {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	scheme := runtime.NewScheme()
	if err := metav1.AddMetaToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	var liveMeta []runtime.Object
	for _, obj := range live {
		liveMeta = append(liveMeta, partial(t, obj))
	}
	client := metadatafake.NewSimpleMetadataClient(scheme, liveMeta...)
	factory := metadatainformer.NewSharedInformerFactory(client, 0)
	gc := newGarbageCollector(client, nil)
	for _, r := range gcTestResources {
		if err := gc.addKind(r, factory.ForResource(r.gvr).Informer()); err != nil {
			t.Fatal(err)
		}
	}
	f := &gcFixture{client: client, gc: gc, ctx: ctx}
	for _, obj := range cached {
		f.cache(t, obj)
	}
	client.ClearActions()
	return f
}

// partial is obj as the metadata client sees it.
func partial(t *testing.T, obj runtime.Object) *metav1.PartialObjectMetadata {
	t.Helper()
	m, err := meta.Accessor(obj)
	if err != nil {
		t.Fatal(err)
	}
	gvks, _, err := clientscheme.Scheme.ObjectKinds(obj)
	if err != nil {
		t.Fatal(err)
	}
	p := meta.AsPartialObjectMetadata(m)
	p.TypeMeta = metav1.TypeMeta{APIVersion: gvks[0].GroupVersion().String(), Kind: gvks[0].Kind}
	return p
}

// cache puts obj into its kind's informer cache, as if the informer had listed it.
func (f *gcFixture) cache(t *testing.T, obj runtime.Object) {
	t.Helper()
	p := partial(t, obj)
	k := f.gc.kinds[p.GroupVersionKind().GroupKind()]
	if err := k.informer.GetIndexer().Add(p); err != nil {
		t.Fatal(err)
	}
}

// uncache removes obj from its kind's informer cache.
func (f *gcFixture) uncache(t *testing.T, obj runtime.Object) {
	t.Helper()
	p := partial(t, obj)
	if err := f.gc.kinds[p.GroupVersionKind().GroupKind()].informer.GetIndexer().Delete(p); err != nil {
		t.Fatal(err)
	}
}

// stored reads an object of resource from the fake apiserver.
func (f *gcFixture) stored(t *testing.T, resource, namespace, name string) *metav1.PartialObjectMetadata {
	t.Helper()
	for _, r := range gcTestResources {
		if r.gvr.Resource == resource {
			obj, err := f.client.Resource(r.gvr).Namespace(namespace).Get(f.ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return obj
		}
	}
	t.Fatalf("unknown resource %s", resource)
	return nil
}

func (f *gcFixture) process(t *testing.T, kind string, obj metav1.Object) {
	t.Helper()
	item := gcItem{namespace: obj.GetNamespace(), name: obj.GetName(), uid: obj.GetUID()}
	for gk := range f.gc.kinds {
		if gk.Kind == kind {
			item.kind = gk
		}
	}
	if err := f.gc.process(f.ctx, item); err != nil {
		t.Fatalf("process %s: %v", item, err)
	}
}

func deletedNames(client actionRecorder, resource string) []string {
	var out []string
	for _, a := range filterActions(client, "delete", resource) {
		out = append(out, a.(clienttesting.DeleteAction).GetName())
	}
	return out
}

func beingDeleted(rs *appsv1.ReplicaSet, finalizer string) *appsv1.ReplicaSet {
	rs = rs.DeepCopy()
	rs.DeletionTimestamp = &metav1.Time{}
	rs.Finalizers = []string{finalizer}
	return rs
}

func TestGCDeletesPodsOfDeletedReplicaSet(t *testing.T) {
	rs := newReplicaSet("my-replicaset", 2)
	pod := newPod("my-replicaset-a", ownedBy(rs, "ReplicaSet", true))
	f := newGCFixture(t, []runtime.Object{pod}, pod) // the replicaset is gone everywhere
	f.process(t, "Pod", pod)

	deletes := filterActions(f.client, "delete", "pods")
	if len(deletes) != 1 || deletes[0].(clienttesting.DeleteAction).GetName() != "my-replicaset-a" {
		t.Fatalf("deletes = %v", deletes)
	}
	opts := deletes[0].(clienttesting.DeleteAction).GetDeleteOptions()
	if opts.Preconditions == nil || *opts.Preconditions.UID != pod.UID ||
		opts.PropagationPolicy == nil || *opts.PropagationPolicy != metav1.DeletePropagationBackground {
		t.Errorf("delete options = %+v", opts)
	}
	// The owner's absence was confirmed against the apiserver, not only the cache.
	if len(filterActions(f.client, "get", "replicasets")) == 0 {
		t.Error("owner was not looked up live")
	}
}

func TestGCKeepsPodsOfLiveOwners(t *testing.T) {
	rs := newReplicaSet("my-replicaset", 2)
	pod := newPod("my-replicaset-a", ownedBy(rs, "ReplicaSet", true))
	// The replicaset exists but the informer has not seen it yet.
	f := newGCFixture(t, []runtime.Object{pod}, pod, rs)
	f.process(t, "Pod", pod)
	if d := deletedNames(f.client, "pods"); len(d) != 0 {
		t.Errorf("deleted %v although the owner exists", d)
	}
}

func TestGCDeletesPodsOfRecreatedOwner(t *testing.T) {
	old := newReplicaSet("my-replicaset", 2)
	pod := newPod("my-replicaset-a", ownedBy(old, "ReplicaSet", true))
	namesake := old.DeepCopy()
	namesake.UID = "new-uid"
	f := newGCFixture(t, []runtime.Object{pod, namesake}, pod, namesake)
	f.process(t, "Pod", pod)
	if d := deletedNames(f.client, "pods"); len(d) != 1 {
		t.Errorf("deleted %v, want the pod of the old replicaset", d)
	}
}

func TestGCDropsReferenceToMissingOwnerWhenAnotherRemains(t *testing.T) {
	gone := newReplicaSet("gone", 1)
	alive := newReplicaSet("alive", 1)
	pod := newPod("p", ownedBy(gone, "ReplicaSet", false), ownedBy(alive, "ReplicaSet", false))
	pod.OwnerReferences[1].Controller = nil
	f := newGCFixture(t, []runtime.Object{pod, alive}, pod, alive)
	f.process(t, "Pod", pod)
	if d := deletedNames(f.client, "pods"); len(d) != 0 {
		t.Fatalf("deleted %v", d)
	}
	if n := len(filterActions(f.client, "patch", "pods")); n != 1 {
		t.Fatalf("%d patches, want 1", n)
	}
	stored := f.stored(t, "pods", "default", "p")
	if refs := stored.OwnerReferences; len(refs) != 1 || refs[0].UID != alive.UID {
		t.Errorf("remaining owners = %v", refs)
	}
}

func TestGCOrphanFinalizer(t *testing.T) {
	rs := beingDeleted(newReplicaSet("my-replicaset", 2), metav1.FinalizerOrphanDependents)
	a := newPod("a", ownedBy(rs, "ReplicaSet", true))
	b := newPod("b", ownedBy(rs, "ReplicaSet", true))
	f := newGCFixture(t, []runtime.Object{rs, a, b}, rs, a, b)
	f.process(t, "ReplicaSet", rs)

	if d := deletedNames(f.client, "pods"); len(d) != 0 {
		t.Fatalf("orphaning deleted pods %v", d)
	}
	podPatches := filterActions(f.client, "patch", "pods")
	if len(podPatches) != 2 {
		t.Fatalf("pod patches = %v", podPatches)
	}
	for _, name := range []string{"a", "b"} {
		pod := f.stored(t, "pods", "default", name)
		if len(pod.OwnerReferences) != 0 {
			t.Errorf("pod %s still owned: %v", name, pod.OwnerReferences)
		}
	}
	rsPatches := filterActions(f.client, "patch", "replicasets")
	if len(rsPatches) != 1 {
		t.Fatalf("replicaset patches = %v", rsPatches)
	}
	stored := f.stored(t, "replicasets", "default", rs.Name)
	if len(stored.Finalizers) != 0 {
		t.Errorf("finalizers left: %v", stored.Finalizers)
	}
}

func TestGCForegroundDeletion(t *testing.T) {
	rs := beingDeleted(newReplicaSet("my-replicaset", 2), metav1.FinalizerDeleteDependents)
	blocking := newPod("blocking", ownedBy(rs, "ReplicaSet", true))
	f := newGCFixture(t, []runtime.Object{rs, blocking}, rs, blocking)

	// The owner waits: it queues its blocking dependent and keeps its finalizer.
	f.process(t, "ReplicaSet", rs)
	if n := len(filterActions(f.client, "patch", "replicasets")); n != 0 {
		t.Fatalf("finalizer removed while a blocking dependent exists")
	}
	if f.gc.queue.Len() != 1 {
		t.Fatalf("queue holds %d items, want the blocking pod", f.gc.queue.Len())
	}
	item, _ := f.gc.queue.Get()
	f.gc.queue.Done(item)
	if item.name != "blocking" {
		t.Fatalf("queued %s", item)
	}
	// The dependent, whose only owner waits for it, is deleted.
	f.process(t, "Pod", blocking)
	if d := deletedNames(f.client, "pods"); len(d) != 1 || d[0] != "blocking" {
		t.Fatalf("deleted %v", d)
	}
	// Once it is gone from the cache the owner lets go of its finalizer.
	f.uncache(t, blocking)
	f.process(t, "ReplicaSet", rs)
	stored := f.stored(t, "replicasets", "default", rs.Name)
	if len(stored.Finalizers) != 0 {
		t.Errorf("finalizers left: %v", stored.Finalizers)
	}
}

func TestGCForegroundIgnoresNonBlockingDependents(t *testing.T) {
	rs := beingDeleted(newReplicaSet("my-replicaset", 2), metav1.FinalizerDeleteDependents)
	loose := newPod("loose", ownedBy(rs, "ReplicaSet", false))
	f := newGCFixture(t, []runtime.Object{rs, loose}, rs, loose)
	f.process(t, "ReplicaSet", rs)
	if n := len(filterActions(f.client, "patch", "replicasets")); n != 1 {
		t.Errorf("finalizer not removed although no dependent blocks")
	}
}

func TestGCIgnoresUnknownOwnerKinds(t *testing.T) {
	pod := newPod("p", func(p *corev1.Pod) {
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "example.com/v1", Kind: "Widget", Name: "w", UID: "w"}}
	})
	f := newGCFixture(t, []runtime.Object{pod}, pod)
	f.process(t, "Pod", pod)
	if n := len(f.client.Actions()); n != 0 {
		t.Errorf("actions for an owner of a kind skiff does not serve: %v", f.client.Actions())
	}
}

func TestGCRemoveFinalizerRetriesOnConflict(t *testing.T) {
	rs := beingDeleted(newReplicaSet("my-replicaset", 2), metav1.FinalizerOrphanDependents)
	live := rs.DeepCopy()
	live.ResourceVersion = "11" // someone wrote since the cache saw it
	f := newGCFixture(t, []runtime.Object{rs}, live)
	f.client.PrependReactor("patch", "replicasets", func(action clienttesting.Action) (bool, runtime.Object, error) {
		var body struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		if err := json.Unmarshal(action.(clienttesting.PatchAction).GetPatch(), &body); err != nil {
			return true, nil, err
		}
		if body.Metadata.ResourceVersion != "11" {
			return true, nil, apierrors.NewConflict(appsv1.Resource("replicasets"), rs.Name, errors.New("stale"))
		}
		return false, nil, nil
	})
	f.process(t, "ReplicaSet", rs)
	stored := f.stored(t, "replicasets", "default", rs.Name)
	if len(stored.Finalizers) != 0 {
		t.Errorf("finalizers left: %v", stored.Finalizers)
	}
	if n := len(filterActions(f.client, "patch", "replicasets")); n != 2 {
		t.Errorf("%d patches, want a conflict and a retry", n)
	}
}

func TestGCDeletesLeaseOfDeletedNode(t *testing.T) {
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{
		Name: "n1", Namespace: corev1.NamespaceNodeLease, UID: "lease-uid",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: "n1", UID: "node-uid"}},
	}}
	f := newGCFixture(t, []runtime.Object{lease}, lease)
	f.process(t, "Lease", lease)
	if d := deletedNames(f.client, "leases"); len(d) != 1 || d[0] != "n1" {
		t.Fatalf("deleted leases %v", d)
	}
	// The node owner was looked up as a cluster-scoped object.
	gets := filterActions(f.client, "get", "nodes")
	if len(gets) != 1 || gets[0].GetNamespace() != "" {
		t.Errorf("node lookups = %v", gets)
	}
}
