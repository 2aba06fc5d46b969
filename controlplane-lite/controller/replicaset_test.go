package controller

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2/ktesting"
)

// rsFixture is a replicaset controller whose informer caches the test fills by hand, so
// each sync sees exactly the state the test describes.
type rsFixture struct {
	client   *fake.Clientset
	factory  informers.SharedInformerFactory
	ctrl     *replicaSetController
	recorder *record.FakeRecorder
	ctx      context.Context
}

func newRSFixture(t *testing.T, objs ...runtime.Object) *rsFixture {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	client := newClient(objs...)
	factory := informers.NewSharedInformerFactory(client, 0)
	recorder := record.NewFakeRecorder(100)
	ctrl, err := newReplicaSetController(client, factory.Apps().V1().ReplicaSets(), factory.Core().V1().Pods(), recorder)
	if err != nil {
		t.Fatal(err)
	}
	addToIndexer(t, factory, objs...)
	client.ClearActions()
	return &rsFixture{client: client, factory: factory, ctrl: ctrl, recorder: recorder, ctx: ctx}
}

func (f *rsFixture) sync(t *testing.T, key string) {
	t.Helper()
	if _, err := f.ctrl.sync(f.ctx, key); err != nil {
		t.Fatalf("sync %s: %v", key, err)
	}
}

func (f *rsFixture) events() []string {
	var out []string
	for {
		select {
		case e := <-f.recorder.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func createdPods(t *testing.T, client *fake.Clientset) []*corev1.Pod {
	t.Helper()
	var out []*corev1.Pod
	for _, a := range filterActions(client, "create", "pods") {
		out = append(out, a.(clienttesting.CreateAction).GetObject().(*corev1.Pod))
	}
	return out
}

func TestReplicaSetCreatesPodsFromTemplate(t *testing.T) {
	rs := newReplicaSet("my-replicaset", 2)
	f := newRSFixture(t, rs)
	f.sync(t, "default/my-replicaset")

	pods := createdPods(t, f.client)
	if len(pods) != 2 {
		t.Fatalf("created %d pods, want 2", len(pods))
	}
	for _, pod := range pods {
		if pod.GenerateName != "my-replicaset-" || pod.Namespace != "default" {
			t.Errorf("pod generateName=%q namespace=%q", pod.GenerateName, pod.Namespace)
		}
		if pod.Labels["app"] != "nginx" || pod.Labels["tier"] != "web" || len(pod.Labels) != 2 {
			t.Errorf("pod labels = %v, want the template's", pod.Labels)
		}
		if len(pod.OwnerReferences) != 1 {
			t.Fatalf("ownerReferences = %v", pod.OwnerReferences)
		}
		ref := pod.OwnerReferences[0]
		if ref.APIVersion != "apps/v1" || ref.Kind != "ReplicaSet" || ref.Name != "my-replicaset" ||
			ref.UID != rs.UID || ref.Controller == nil || !*ref.Controller ||
			ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
			t.Errorf("ownerReference = %+v", ref)
		}
		if len(pod.Spec.Containers) != 1 || pod.Spec.Containers[0].Image != "nginx" {
			t.Errorf("spec = %+v", pod.Spec)
		}
	}
	events := f.events()
	if len(events) != 2 {
		t.Fatalf("events = %v", events)
	}
	for _, e := range events {
		if !strings.HasPrefix(e, "Normal SuccessfulCreate Created pod: my-replicaset-") {
			t.Errorf("event %q", e)
		}
	}
	// The template of the cached ReplicaSet must not have been touched.
	if cached, _ := f.ctrl.rsLister.ReplicaSets("default").Get("my-replicaset"); cached.Status.ObservedGeneration != 0 {
		t.Errorf("cache object was mutated: %+v", cached.Status)
	}
}

func TestReplicaSetExpectationsPreventDoubleCreation(t *testing.T) {
	rs := newReplicaSet("my-replicaset", 2)
	f := newRSFixture(t, rs)
	f.sync(t, "default/my-replicaset")
	// The informer has not delivered the new pods yet: a second sync must not create more.
	f.sync(t, "default/my-replicaset")
	if n := len(createdPods(t, f.client)); n != 2 {
		t.Fatalf("created %d pods over two syncs, want 2", n)
	}
	// Recorded actions are copies taken before the apiserver named the pods: read them back.
	list, err := f.client.CoreV1().Pods("default").List(f.ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) != 2 {
		t.Fatalf("stored pods: %v, %v", list, err)
	}
	pods := []*corev1.Pod{&list.Items[0], &list.Items[1]}
	// The informer catches up with one pod: still waiting for the other.
	addToIndexer(t, f.factory, pods[0])
	f.ctrl.addPod(pods[0])
	if f.ctrl.exp.satisfied("default/my-replicaset") {
		t.Fatal("expectations satisfied after one of two creations")
	}
	addToIndexer(t, f.factory, pods[1])
	f.ctrl.addPod(pods[1])
	if !f.ctrl.exp.satisfied("default/my-replicaset") {
		t.Fatal("expectations not satisfied after both creations were observed")
	}
	f.sync(t, "default/my-replicaset")
	if n := len(createdPods(t, f.client)); n != 2 {
		t.Fatalf("created %d pods in total, want 2", n)
	}
}

func TestReplicaSetFailedCreateIsNotAwaited(t *testing.T) {
	rs := newReplicaSet("my-replicaset", 3)
	f := newRSFixture(t, rs)
	f.client.PrependReactor("create", "pods", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, context.DeadlineExceeded
	})
	if _, err := f.ctrl.sync(f.ctx, "default/my-replicaset"); err == nil {
		t.Fatal("sync succeeded although creates fail")
	}
	// Slow start: one attempt, then stop; the skipped creations are not awaited.
	if n := len(createdPods(t, f.client)); n != 1 {
		t.Errorf("attempted %d creates, want 1 (slow start)", n)
	}
	if !f.ctrl.exp.satisfied("default/my-replicaset") {
		t.Error("expectations wait for creations that failed")
	}
	if events := f.events(); len(events) != 1 || !strings.HasPrefix(events[0], "Warning FailedCreate Error creating:") {
		t.Errorf("events = %v", events)
	}
	var status *appsv1.ReplicaSet
	for _, a := range filterActions(f.client, "update", "replicasets") {
		status = a.(clienttesting.UpdateAction).GetObject().(*appsv1.ReplicaSet)
	}
	if status == nil || len(status.Status.Conditions) != 1 ||
		status.Status.Conditions[0].Type != appsv1.ReplicaSetReplicaFailure {
		t.Errorf("status without ReplicaFailure condition: %+v", status)
	}
}

func TestReplicaSetScaleDownDeletesTheRightPods(t *testing.T) {
	rs := newReplicaSet("my-replicaset", 2)
	old := time.Now().Add(-time.Hour)
	pods := []runtime.Object{
		newPod("ready-old", ownedBy(rs, "ReplicaSet", true), onNode("n1"), running(old), createdAt(old)),
		newPod("ready-new", ownedBy(rs, "ReplicaSet", true), onNode("n1"), running(time.Now()), createdAt(old)),
		newPod("running-not-ready", ownedBy(rs, "ReplicaSet", true), onNode("n1"), running(time.Time{})),
		newPod("pending", ownedBy(rs, "ReplicaSet", true), onNode("n1")),
		newPod("unscheduled", ownedBy(rs, "ReplicaSet", true)),
	}
	*rs.Spec.Replicas = 1
	f := newRSFixture(t, append(pods, rs)...)
	f.sync(t, "default/my-replicaset")

	var deleted []string
	for _, a := range filterActions(f.client, "delete", "pods") {
		deleted = append(deleted, a.(clienttesting.DeleteAction).GetName())
	}
	want := map[string]bool{"unscheduled": true, "pending": true, "running-not-ready": true, "ready-new": true}
	if len(deleted) != 4 {
		t.Fatalf("deleted %v, want %v", deleted, want)
	}
	for _, name := range deleted {
		if !want[name] {
			t.Errorf("deleted %s, want only %v", name, want)
		}
	}
	if events := f.events(); len(events) != 4 || !strings.HasPrefix(events[0], "Normal SuccessfulDelete Deleted pod: ") {
		t.Errorf("events = %v", events)
	}
	// Until the deletions are observed, a second sync deletes nothing more.
	f.sync(t, "default/my-replicaset")
	if n := len(filterActions(f.client, "delete", "pods")); n != 4 {
		t.Errorf("%d deletes after the second sync, want still 4", n)
	}
}

func TestDeleteRanking(t *testing.T) {
	now := time.Now()
	ordered := []*corev1.Pod{
		newPod("unscheduled"),
		newPod("pending", onNode("n")),
		newPod("not-ready", onNode("n"), running(time.Time{})),
		newPod("ready-recently", onNode("n"), running(now.Add(-time.Minute))),
		newPod("ready-long", onNode("n"), running(now.Add(-time.Hour))),
	}
	for i := range ordered {
		for j := range ordered {
			if got := deleteBefore(ordered[i], ordered[j]); got != (i < j) {
				t.Errorf("deleteBefore(%s, %s) = %v", ordered[i].Name, ordered[j].Name, got)
			}
		}
	}
	newer := newPod("newer", createdAt(now))
	older := newPod("older", createdAt(now.Add(-time.Hour)))
	if !deleteBefore(newer, older) || deleteBefore(older, newer) {
		t.Error("newer pods must go first")
	}
}

func TestReplicaSetAdoptsAndReleases(t *testing.T) {
	rs := newReplicaSet("my-replicaset", 2)
	orphan := newPod("orphan")
	other := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "other", UID: "other-uid"}}
	ownedElsewhere := newPod("owned-elsewhere", ownedBy(other, "ReplicaSet", true))
	relabeled := newPod("relabeled", ownedBy(rs, "ReplicaSet", true), withLabels(map[string]string{"app": "debug"}))
	f := newRSFixture(t, rs, orphan, ownedElsewhere, relabeled)
	f.sync(t, "default/my-replicaset")

	patched := map[string]bool{}
	for _, a := range filterActions(f.client, "patch", "pods") {
		p := a.(clienttesting.PatchAction)
		if p.GetPatchType() != types.StrategicMergePatchType {
			t.Errorf("patch type %s", p.GetPatchType())
		}
		var body struct {
			Metadata struct {
				UID             types.UID `json:"uid"`
				ResourceVersion string    `json:"resourceVersion"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(p.GetPatch(), &body); err != nil {
			t.Fatal(err)
		}
		if body.Metadata.UID != types.UID(p.GetName()+"-uid") || body.Metadata.ResourceVersion != "" {
			t.Errorf("patch of %s not guarded by uid alone: %s", p.GetName(), p.GetPatch())
		}
		patched[p.GetName()] = true
	}
	if len(patched) != 2 || !patched["orphan"] || !patched["relabeled"] {
		t.Fatalf("patched %v, want orphan and relabeled", patched)
	}
	stored := func(name string) *corev1.Pod {
		pod, err := f.client.CoreV1().Pods("default").Get(f.ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return pod
	}
	ref := metav1.GetControllerOf(stored("orphan"))
	if ref == nil || ref.UID != rs.UID || ref.Kind != "ReplicaSet" || ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
		t.Errorf("orphan adopted with %+v", ref)
	}
	if refs := stored("relabeled").OwnerReferences; len(refs) != 0 {
		t.Errorf("relabeled pod still owned by %v", refs)
	}
	if refs := stored("owned-elsewhere").OwnerReferences; len(refs) != 1 || refs[0].UID != other.UID {
		t.Errorf("pod of another controller changed: %v", refs)
	}
	// Adoption checks the owner live first.
	if len(filterActions(f.client, "get", "replicasets")) != 1 {
		t.Error("adoption did not check the replicaset against the apiserver")
	}
	// One pod adopted, one missing: one created.
	if n := len(createdPods(t, f.client)); n != 1 {
		t.Errorf("created %d pods, want 1", n)
	}
}

func TestReplicaSetDoesNotAdoptIntoDeletedOwner(t *testing.T) {
	rs := newReplicaSet("my-replicaset", 1)
	live := rs.DeepCopy()
	live.UID = "recreated"
	f := newRSFixture(t, live, newPod("orphan"))
	addToIndexer(t, f.factory, rs) // the cache still has the old object
	if _, err := f.ctrl.sync(f.ctx, "default/my-replicaset"); err == nil {
		t.Fatal("adopted into a replicaset that was recreated")
	}
	if n := len(filterActions(f.client, "patch", "pods")); n != 0 {
		t.Errorf("%d patches", n)
	}
}

func TestReplicaSetStatus(t *testing.T) {
	rs := newReplicaSet("my-replicaset", 3)
	rs.Spec.MinReadySeconds = 30
	rs.Generation = 4
	now := time.Now()
	f := newRSFixture(t, rs,
		newPod("available", ownedBy(rs, "ReplicaSet", true), onNode("n"), running(now.Add(-time.Hour))),
		newPod("just-ready", ownedBy(rs, "ReplicaSet", true), onNode("n"), running(now.Add(-time.Second)),
			withLabels(map[string]string{"app": "nginx"})), // matches the selector, not the template
		newPod("starting", ownedBy(rs, "ReplicaSet", true), onNode("n")),
		newPod("done", ownedBy(rs, "ReplicaSet", true), func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }),
		newPod("terminating", ownedBy(rs, "ReplicaSet", true), func(p *corev1.Pod) {
			p.DeletionTimestamp = &metav1.Time{Time: now}
		}),
	)
	requeue, err := f.ctrl.sync(f.ctx, "default/my-replicaset")
	if err != nil {
		t.Fatal(err)
	}
	updates := filterActions(f.client, "update", "replicasets")
	if len(updates) != 1 || updates[0].GetSubresource() != "status" {
		t.Fatalf("updates = %v", updates)
	}
	got := updates[0].(clienttesting.UpdateAction).GetObject().(*appsv1.ReplicaSet).Status
	if got.Replicas != 3 || got.FullyLabeledReplicas != 2 || got.ReadyReplicas != 2 ||
		got.AvailableReplicas != 1 || got.ObservedGeneration != 4 ||
		got.TerminatingReplicas == nil || *got.TerminatingReplicas != 1 {
		t.Errorf("status = %+v", got)
	}
	if requeue != 30*time.Second {
		t.Errorf("requeue after %v, want minReadySeconds", requeue)
	}
	if n := len(createdPods(t, f.client)); n != 0 {
		t.Errorf("created %d pods although 3 are active", n)
	}

	// With the status in place, a resync writes nothing.
	stored, err := f.client.AppsV1().ReplicaSets("default").Get(f.ctx, "my-replicaset", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.factory.Apps().V1().ReplicaSets().Informer().GetIndexer().Update(stored); err != nil {
		t.Fatal(err)
	}
	f.client.ClearActions()
	f.sync(t, "default/my-replicaset")
	if n := len(filterActions(f.client, "update", "replicasets")); n != 0 {
		t.Errorf("%d status updates although nothing changed", n)
	}
}

func TestSlowStartBatch(t *testing.T) {
	var calls atomic.Int32
	n, err := slowStartBatch(10, 1, func() error {
		calls.Add(1)
		return nil
	})
	if n != 10 || err != nil || calls.Load() != 10 {
		t.Errorf("got %d, %v after %d calls", n, err, calls.Load())
	}
	// The fourth call fails: batches of 1, 2, then 4 run, and nothing after.
	calls.Store(0)
	n, err = slowStartBatch(10, 1, func() error {
		if calls.Add(1) == 4 {
			return errors.New("quota")
		}
		return nil
	})
	if n != 6 || err == nil || calls.Load() != 7 {
		t.Errorf("got %d, %v after %d calls, want 6 successes of 7 calls", n, err, calls.Load())
	}
}
