package controller

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/klog/v2/ktesting"
)

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("New accepted a config without a client")
	}
	if _, err := New(Config{Client: fake.NewClientset()}); err == nil {
		t.Error("New accepted a config without a metadata client")
	}
	if _, err := New(Config{Client: fake.NewClientset(), Metadata: newMetadataClient(t), Workers: -1}); err == nil {
		t.Error("New accepted negative workers")
	}
}

// TestManagerSeedFlow runs the whole manager against skiff's apiserver on etcd: a
// ReplicaSet gets its two pods and events, and deleting it (background propagation)
// removes the pods.
func TestManagerSeedFlow(t *testing.T) {
	client, _ := runManager(t, startAPIServer(t))
	ctx := t.Context()

	rs := newReplicaSet("my-replicaset", 2)
	rs.UID, rs.ResourceVersion = "", ""
	if _, err := client.AppsV1().ReplicaSets("default").Create(ctx, rs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "two pods", func() bool {
		pods, _ := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		return len(pods.Items) == 2
	})
	waitFor(ctx, t, "status.replicas=2", func() bool {
		got, _ := client.AppsV1().ReplicaSets("default").Get(ctx, rs.Name, metav1.GetOptions{})
		return got != nil && got.Status.Replicas == 2 && got.Status.ObservedGeneration == 1
	})
	waitFor(ctx, t, "SuccessfulCreate events", func() bool {
		events, _ := client.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
		n := 0
		for _, e := range events.Items {
			if e.Reason == "SuccessfulCreate" && strings.HasPrefix(e.Message, "Created pod: my-replicaset-") &&
				e.InvolvedObject.Kind == "ReplicaSet" && e.Source.Component == "replicaset-controller" {
				n++
			}
		}
		return n == 2
	})
	// Stays at two.
	time.Sleep(200 * time.Millisecond)
	if pods, _ := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); len(pods.Items) != 2 {
		t.Fatalf("%d pods after settling, want 2", len(pods.Items))
	}

	if err := client.AppsV1().ReplicaSets("default").Delete(ctx, rs.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "pods garbage collected", func() bool {
		pods, _ := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		return len(pods.Items) == 0
	})
}

func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func TestPodGC(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "alive"}}
	onAlive := newPod("on-alive", onNode("alive"))
	onGone := newPod("on-gone", onNode("gone"))
	terminating := newPod("terminating", func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{} })
	objs := []runtime.Object{node, onAlive, onGone, terminating}
	client := newClient(objs...)
	factory := informers.NewSharedInformerFactory(client, 0)
	gc := newPodGC(client, factory.Core().V1().Pods(), factory.Core().V1().Nodes())
	addToIndexer(t, factory, objs...)
	now := time.Now()
	gc.now = func() time.Time { return now }
	client.ClearActions()

	if err := gc.gc(ctx); err != nil {
		t.Fatal(err)
	}
	if d := deletedNames(client, "pods"); !slices.Equal(d, []string{"terminating"}) {
		t.Fatalf("first pass deleted %v, want only the terminating unscheduled pod", d)
	}
	// A missing node is only trusted after the quarantine, and confirmed live.
	now = now.Add(orphanQuarantine + time.Second)
	client.ClearActions()
	if err := gc.gc(ctx); err != nil {
		t.Fatal(err)
	}
	deletes := filterActions(client, "delete", "pods")
	var forced []string
	for _, a := range deletes {
		d := a.(clienttesting.DeleteAction)
		if g := d.GetDeleteOptions().GracePeriodSeconds; g == nil || *g != 0 {
			t.Errorf("delete of %s is not forced: %+v", d.GetName(), d.GetDeleteOptions())
		}
		forced = append(forced, d.GetName())
	}
	if !slices.Contains(forced, "on-gone") || slices.Contains(forced, "on-alive") {
		t.Fatalf("second pass deleted %v", forced)
	}
	if len(filterActions(client, "get", "nodes")) == 0 {
		t.Error("missing node not confirmed against the apiserver")
	}
}

func TestPodGCTerminatedThreshold(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var objs []runtime.Object
	for i, name := range []string{"oldest", "middle", "newest"} {
		objs = append(objs, newPod(name, createdAt(base.Add(time.Duration(i)*time.Minute)),
			func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }))
	}
	client := newClient(objs...)
	factory := informers.NewSharedInformerFactory(client, 0)
	gc := newPodGC(client, factory.Core().V1().Pods(), factory.Core().V1().Nodes())
	gc.threshold = 1
	addToIndexer(t, factory, objs...)
	client.ClearActions()
	if err := gc.gc(ctx); err != nil {
		t.Fatal(err)
	}
	d := deletedNames(client, "pods")
	slices.Sort(d)
	if !slices.Equal(d, []string{"middle", "oldest"}) {
		t.Errorf("deleted %v, want the two oldest", d)
	}
}
