package controller

import (
	"context"
	"slices"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/klog/v2/ktesting"
)

func TestNamespaceCleanerDeletesLeftovers(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	inGone := func(p *corev1.Pod) { p.Namespace = "gone" }
	rs := newReplicaSet("rs", 1)
	rs.Namespace = "gone"
	objs := []runtime.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}},
		newPod("kept"),
		newPod("left", inGone),
		rs,
		&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "l", Namespace: "gone"}},
		&corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e", Namespace: "gone"}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "gone"}},
	}
	client := newClient(objs...)
	metaClient := newMetadataClient(t, objs[1:]...)
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := newNamespaceCleaner(client, metaClient, factory)
	if err != nil {
		t.Fatal(err)
	}
	addToIndexer(t, factory, objs[1:4]...)
	if err := factory.Core().V1().Namespaces().Informer().GetIndexer().Add(objs[0]); err != nil {
		t.Fatal(err)
	}

	c.sweep()
	if c.queue.Len() != 1 {
		t.Fatalf("sweep queued %d namespaces, want only the missing one", c.queue.Len())
	}
	metaClient.ClearActions()
	if _, err := c.clean(ctx, "default"); err != nil {
		t.Fatal(err)
	}
	if n := len(filterActions(metaClient, "delete", "pods")); n != 0 {
		t.Fatalf("deleted %d pods of a namespace that exists", n)
	}
	if _, err := c.clean(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	var deleted []string
	for _, a := range metaClient.Actions() {
		if d, ok := a.(clienttesting.DeleteAction); ok {
			if d.GetNamespace() != "gone" {
				t.Errorf("deleted %s in %s", d.GetName(), d.GetNamespace())
			}
			deleted = append(deleted, d.GetResource().Resource+"/"+d.GetName())
		}
	}
	slices.Sort(deleted)
	// Every namespaced kind discovery reports goes, not only a known list.
	if want := []string{"configmaps/c", "events/e", "leases/l", "pods/left", "replicasets/rs"}; !slices.Equal(deleted, want) {
		t.Errorf("deleted %v, want %v", deleted, want)
	}
}

func TestNamespaceCleanerFinalizesTerminatingNamespace(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ns := &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: "t", DeletionTimestamp: &metav1.Time{}},
		Spec:       corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{corev1.FinalizerKubernetes}},
	}
	terminating := newPod("p", func(p *corev1.Pod) { p.Namespace = "t"; p.DeletionTimestamp = &metav1.Time{} })
	client := newClient(ns)
	metaClient := newMetadataClient(t, terminating)
	c, err := newNamespaceCleaner(client, metaClient, informers.NewSharedInformerFactory(client, 0))
	if err != nil {
		t.Fatal(err)
	}
	requeue, err := c.clean(ctx, "t")
	if err != nil || !requeue {
		t.Fatalf("clean = %v, %v; want to wait for the terminating pod", requeue, err)
	}
	// client-go's fake records Finalize (a PUT to /finalize) as a create on the subresource.
	if n := len(filterActions(client, "create", "namespaces")); n != 0 {
		t.Fatal("finalized a namespace that still has a pod")
	}
	if err := metaClient.Resource(corev1.SchemeGroupVersion.WithResource("pods")).Namespace("t").Delete(ctx, "p", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if requeue, err := c.clean(ctx, "t"); err != nil || requeue {
		t.Fatalf("clean = %v, %v", requeue, err)
	}
	updates := filterActions(client, "create", "namespaces")
	if len(updates) != 1 || updates[0].GetSubresource() != "finalize" {
		t.Fatalf("finalize calls = %v", updates)
	}
	if f := updates[0].(clienttesting.CreateAction).GetObject().(*corev1.Namespace).Spec.Finalizers; len(f) != 0 {
		t.Errorf("finalizers after finalize: %v", f)
	}
}

// A namespace that was already terminating when the cleaner's informer listed it (it was
// deleted before the controllers started or while they were down) is queued too.
func TestNamespaceCleanerQueuesNamespaceTerminatingAtStart(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	terminating := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "t", DeletionTimestamp: &metav1.Time{}}}
	live := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "live"}}
	client := newClient(terminating, live)
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := newNamespaceCleaner(client, newMetadataClient(t), factory)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer factory.Shutdown() // after cancel: it waits for the informers to stop
	defer cancel()
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	// The informer's handlers run after its store is synced: wait for them to be called.
	err = wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 5*time.Second, true,
		func(context.Context) (bool, error) { return c.queue.Len() > 0, nil })
	if err != nil || c.queue.Len() != 1 {
		t.Fatalf("queued %d namespaces, want the terminating one", c.queue.Len())
	}
	if got, _ := c.queue.Get(); got != "t" {
		t.Errorf("queued %q, want t", got)
	}
}
