package storage

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-sh/skiff/controlplane-lite/etcd/etcdtest"
)

func TestStoredAsKubeAPIServerDoes(t *testing.T) {
	s, client := testStore(t, defaultOptions())
	ctx := context.Background()
	created := mustCreate(t, s, newPod("default", "web", "", map[string]string{"app": "web"}))

	resp, err := client.Get(ctx, "/registry/pods/default/web")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("raw get: %v %v", resp, err)
	}
	raw := resp.Kvs[0]
	if !bytes.HasPrefix(raw.Value, []byte("k8s\x00")) {
		t.Fatalf("stored value starts with %q, want the k8s\\x00 envelope", raw.Value[:min(8, len(raw.Value))])
	}
	var unk runtime.Unknown
	if err := unk.Unmarshal(raw.Value[4:]); err != nil {
		t.Fatalf("envelope is not a runtime.Unknown: %v", err)
	}
	if unk.APIVersion != "v1" || unk.Kind != "Pod" {
		t.Errorf("envelope names %s %s, want v1 Pod", unk.APIVersion, unk.Kind)
	}
	var stored corev1.Pod
	if err := stored.Unmarshal(unk.Raw); err != nil {
		t.Fatalf("payload is not a protobuf Pod: %v", err)
	}
	if stored.ResourceVersion != "" {
		t.Errorf("resourceVersion %q was stored; it must come from mod_revision", stored.ResourceVersion)
	}
	if stored.Name != "web" || stored.Labels["app"] != "web" {
		t.Errorf("stored pod %s %v, want web with its labels", stored.Name, stored.Labels)
	}
	if want := strconv.FormatInt(raw.ModRevision, 10); created.ResourceVersion != want {
		t.Errorf("Create returned resourceVersion %q, want the mod_revision %s", created.ResourceVersion, want)
	}
	if created.Kind != "Pod" || created.APIVersion != "v1" {
		t.Errorf("Create returned TypeMeta %+v, want v1 Pod", created.TypeMeta)
	}
}

func TestCreateGetDelete(t *testing.T) {
	s, _ := testStore(t, defaultOptions())
	ctx := context.Background()
	in := newPod("default", "web", "", nil)
	created := mustCreate(t, s, in)
	if in.ResourceVersion != "" {
		t.Error("Create modified the caller's object")
	}

	_, err := s.Create(ctx, newPod("default", "web", "", nil))
	if !apierrors.IsAlreadyExists(err) {
		t.Fatalf("second create: %v, want AlreadyExists", err)
	}
	if d := err.(apierrors.APIStatus).Status().Details; d == nil || d.Kind != "pods" || d.Name != "web" {
		t.Errorf("AlreadyExists details %+v, want pods/web", d)
	}
	// The same name in another namespace is another object.
	mustCreate(t, s, newPod("other", "web", "", nil))

	got, err := s.Get(ctx, "default", "web")
	if err != nil {
		t.Fatal(err)
	}
	if pod := got.(*corev1.Pod); pod.ResourceVersion != created.ResourceVersion || pod.Kind != "Pod" || pod.UID != in.UID {
		t.Errorf("Get returned %s rv %s kind %q, want rv %s", pod.Name, pod.ResourceVersion, pod.Kind, created.ResourceVersion)
	}
	if _, err := s.Get(ctx, "default", "missing"); !apierrors.IsNotFound(err) {
		t.Errorf("get missing: %v, want NotFound", err)
	}

	wrongUID := types.UID("nope")
	if _, err := s.Delete(ctx, "default", "web", &metav1.Preconditions{UID: &wrongUID}, nil); !apierrors.IsConflict(err) {
		t.Errorf("delete with wrong uid: %v, want Conflict", err)
	}
	staleRV := "1"
	if _, err := s.Delete(ctx, "default", "web", &metav1.Preconditions{ResourceVersion: &staleRV}, nil); !apierrors.IsConflict(err) {
		t.Errorf("delete with stale rv: %v, want Conflict", err)
	}
	deleted, err := s.Delete(ctx, "default", "web", &metav1.Preconditions{UID: &in.UID, ResourceVersion: &created.ResourceVersion}, nil)
	if err != nil {
		t.Fatalf("delete: %v", err)
	}
	if deleted.(*corev1.Pod).Name != "web" {
		t.Errorf("delete returned %v", deleted)
	}
	if _, err := s.Delete(ctx, "default", "web", nil, nil); !apierrors.IsNotFound(err) {
		t.Errorf("second delete: %v, want NotFound", err)
	}
	if _, err := s.Get(ctx, "other", "web"); err != nil {
		t.Errorf("the other namespace's pod is gone: %v", err)
	}
}

func TestCreateRejectsBadInput(t *testing.T) {
	s, _ := testStore(t, defaultOptions())
	ctx := context.Background()
	withRV := newPod("default", "a", "", nil)
	withRV.ResourceVersion = "5"
	noNS := newPod("", "a", "", nil)
	for name, pod := range map[string]*corev1.Pod{
		"resourceVersion set": withRV,
		"no namespace":        noNS,
		"no name":             newPod("default", "", "", nil),
		"slash in name":       newPod("default", "a/b", "", nil),
		"dot-dot namespace":   newPod("..", "a", "", nil),
	} {
		if _, err := s.Create(ctx, pod); !apierrors.IsBadRequest(err) {
			t.Errorf("%s: %v, want BadRequest", name, err)
		}
	}
}

func TestGuaranteedUpdate(t *testing.T) {
	s, client := testStore(t, defaultOptions())
	ctx := context.Background()
	created := mustCreate(t, s, newPod("default", "web", "", nil))

	updated := mustUpdate(t, s, "default", "web", func(p *corev1.Pod) { p.Labels = map[string]string{"v": "2"} })
	if updated.ResourceVersion == created.ResourceVersion || updated.Labels["v"] != "2" || updated.Kind != "Pod" {
		t.Fatalf("update returned rv %s labels %v kind %q", updated.ResourceVersion, updated.Labels, updated.Kind)
	}

	// PUT with the resourceVersion the client read: a stale one conflicts.
	_, err := s.GuaranteedUpdate(ctx, "default", "web", func(runtime.Object) (runtime.Object, error) {
		return newPodWithRV(created.ResourceVersion), nil
	})
	if !apierrors.IsConflict(err) || err.(apierrors.APIStatus).Status().Message != `Operation cannot be fulfilled on pods "web": `+conflictMessage {
		t.Fatalf("stale update: %v, want kube-apiserver's Conflict", err)
	}
	// The current one succeeds.
	if _, err := s.GuaranteedUpdate(ctx, "default", "web", func(runtime.Object) (runtime.Object, error) {
		return newPodWithRV(updated.ResourceVersion), nil
	}); err != nil {
		t.Fatalf("update with current rv: %v", err)
	}

	// An update that changes nothing is not written.
	before, _ := client.Get(ctx, "/registry/pods/default/web")
	same, err := s.GuaranteedUpdate(ctx, "default", "web", func(cur runtime.Object) (runtime.Object, error) { return cur, nil })
	if err != nil {
		t.Fatal(err)
	}
	after, _ := client.Get(ctx, "/registry/pods/default/web")
	if after.Kvs[0].ModRevision != before.Kvs[0].ModRevision || same.(*corev1.Pod).ResourceVersion != strconv.FormatInt(before.Kvs[0].ModRevision, 10) {
		t.Errorf("no-op update wrote: mod_revision %d -> %d", before.Kvs[0].ModRevision, after.Kvs[0].ModRevision)
	}

	if _, err := s.GuaranteedUpdate(ctx, "default", "missing", func(cur runtime.Object) (runtime.Object, error) { return cur, nil }); !apierrors.IsNotFound(err) {
		t.Errorf("update of a missing pod: %v, want NotFound", err)
	}
	// tryUpdate's own error comes back unchanged.
	myErr := apierrors.NewForbidden(podResource().GroupResource, "web", nil)
	if _, err := s.GuaranteedUpdate(ctx, "default", "web", func(runtime.Object) (runtime.Object, error) { return nil, myErr }); err != myErr {
		t.Errorf("tryUpdate error came back as %v", err)
	}
}

// newPodWithRV is what a client PUTs: the full object with the resourceVersion it read.
func newPodWithRV(rv string) *corev1.Pod {
	p := newPod("default", "web", "", map[string]string{"put": rv})
	p.ResourceVersion = rv
	return p
}

func TestGuaranteedUpdateRetriesOnRace(t *testing.T) {
	s, _ := testStore(t, defaultOptions())
	mustCreate(t, s, newPod("default", "counter", "", nil))
	const writers = 8
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			mustUpdate(t, s, "default", "counter", func(p *corev1.Pod) {
				n, _ := strconv.Atoi(p.Annotations["n"])
				p.Annotations = map[string]string{"n": strconv.Itoa(n + 1)}
			})
		})
	}
	wg.Wait()
	got, err := s.Get(context.Background(), "default", "counter")
	if err != nil {
		t.Fatal(err)
	}
	if n := got.(*corev1.Pod).Annotations["n"]; n != strconv.Itoa(writers) {
		t.Errorf("counter = %s after %d concurrent increments: an update was lost", n, writers)
	}
}

func TestClusterScopedResource(t *testing.T) {
	_, client := etcdtest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := New(ctx, client, Resource{
		GroupResource:    schema.GroupResource{Resource: "nodes"},
		GroupVersionKind: corev1.SchemeGroupVersion.WithKind("Node"),
		Prefix:           "/registry/minions",
		NewFunc:          func() runtime.Object { return &corev1.Node{} },
		NewListFunc:      func() runtime.Object { return &corev1.NodeList{} },
		AttrFunc: func(obj runtime.Object) (labels.Set, fields.Set, error) {
			n := obj.(*corev1.Node)
			return n.Labels, fields.Set{"metadata.name": n.Name}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	node, err := s.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1"}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Get(ctx, "/registry/minions/node1")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("node not under /registry/minions/node1: %v", err)
	}
	if _, err := s.Get(ctx, "", "node1"); err != nil {
		t.Error(err)
	}
	if _, err := s.Get(ctx, "default", "node1"); !apierrors.IsBadRequest(err) {
		t.Errorf("get with a namespace: %v, want BadRequest", err)
	}
	// A namespace given to List or Watch of a cluster-scoped resource is ignored.
	list, err := s.List(ctx, "default", ListOptions{ResourceVersion: node.(*corev1.Node).ResourceVersion})
	if err != nil || len(list.(*corev1.NodeList).Items) != 1 {
		t.Errorf("list nodes: %v %v", list, err)
	}
	if _, err := New(ctx, client, Resource{GroupResource: schema.GroupResource{Resource: "nodes"}}); err == nil {
		t.Error("New accepted an incomplete Resource")
	}
}

func TestTooLargeObjectIs413(t *testing.T) {
	s, _ := testStore(t, defaultOptions())
	pod := newPod("default", "big", "", nil)
	pod.Annotations = map[string]string{"blob": strings.Repeat("x", 1700*1024)}
	_, err := s.Create(context.Background(), pod)
	if !apierrors.IsRequestEntityTooLargeError(err) {
		t.Fatalf("create of a 1.7 MiB pod: %v, want 413", err)
	}
}

// TestDeleteValidatesTheRevisionItDeletes: a write between Delete's read and its
// compare-and-swap makes Delete validate the new state, which may refuse the delete.
func TestDeleteValidatesTheRevisionItDeletes(t *testing.T) {
	s, client := testStore(t, defaultOptions())
	ctx := context.Background()
	mustCreate(t, s, newPod("default", "web", "", nil))
	errHasFinalizer := errors.New("has a finalizer")
	calls := 0
	_, err := s.Delete(ctx, "default", "web", nil, func(current runtime.Object) error {
		calls++
		if len(current.(*corev1.Pod).Finalizers) > 0 {
			return errHasFinalizer
		}
		if calls == 1 {
			// Another writer adds a finalizer after Delete read the object.
			_, err := s.GuaranteedUpdate(ctx, "default", "web", func(cur runtime.Object) (runtime.Object, error) {
				cur.(*corev1.Pod).Finalizers = []string{"example.com/keep"}
				return cur, nil
			})
			if err != nil {
				t.Fatalf("add finalizer: %v", err)
			}
		}
		return nil
	})
	if !errors.Is(err, errHasFinalizer) {
		t.Fatalf("Delete = %v, want the validate error", err)
	}
	if calls != 2 {
		t.Errorf("validate ran %d times, want 2 (once per revision)", calls)
	}
	resp, err := client.Get(ctx, "/registry/pods/default/web")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("the object with the finalizer was deleted: %v", err)
	}
}
