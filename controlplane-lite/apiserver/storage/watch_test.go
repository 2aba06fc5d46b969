package storage

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
)

func TestWatchFromZeroStartsWithCurrentState(t *testing.T) {
	s, _ := testStore(t, defaultOptions())
	a := mustCreate(t, s, newPod("ns", "a", "", nil))
	b := mustCreate(t, s, newPod("ns", "b", "", nil))

	for _, rv := range []string{"0", ""} {
		t.Run("rv="+rv, func(t *testing.T) {
			w := startWatch(t, s, "ns", ListOptions{ResourceVersion: rv})
			expectEvent(t, w, watch.Added, "a", a.ResourceVersion)
			got := expectEvent(t, w, watch.Added, "b", b.ResourceVersion)
			if got.Kind != "Pod" || got.APIVersion != "v1" {
				t.Errorf("event object TypeMeta %+v, want v1 Pod", got.TypeMeta)
			}
			expectNoEvent(t, w, 100*time.Millisecond)
		})
	}

	w := startWatch(t, s, "ns", ListOptions{ResourceVersion: "0"})
	expectEvent(t, w, watch.Added, "a", "")
	expectEvent(t, w, watch.Added, "b", "")
	c := mustCreate(t, s, newPod("ns", "c", "", nil))
	expectEvent(t, w, watch.Added, "c", c.ResourceVersion)
	a2 := mustUpdate(t, s, "ns", "a", func(p *corev1.Pod) { p.Labels = map[string]string{"x": "y"} })
	if got := expectEvent(t, w, watch.Modified, "a", a2.ResourceVersion); got.Labels["x"] != "y" {
		t.Errorf("MODIFIED carries labels %v", got.Labels)
	}
	if _, err := s.Delete(context.Background(), "ns", "b", nil, nil); err != nil {
		t.Fatal(err)
	}
	deleted := expectEvent(t, w, watch.Deleted, "b", "")
	if n, _ := strconv.Atoi(deleted.ResourceVersion); strconv.Itoa(n) != deleted.ResourceVersion || deleted.ResourceVersion <= a2.ResourceVersion {
		t.Errorf("DELETED rv %s, want the deletion's revision (> %s)", deleted.ResourceVersion, a2.ResourceVersion)
	}
}

func TestWatchFromResourceVersion(t *testing.T) {
	s, _ := testStore(t, defaultOptions())
	mustCreate(t, s, newPod("ns", "a", "", nil))
	list := mustList(t, s, "ns", ListOptions{})
	b := mustCreate(t, s, newPod("ns", "b", "", nil))
	a2 := mustUpdate(t, s, "ns", "a", func(p *corev1.Pod) { p.Labels = map[string]string{"v": "2"} })

	// client-go's reflector: list, then watch from the list's resourceVersion.
	w := startWatch(t, s, "ns", ListOptions{ResourceVersion: list.ResourceVersion})
	expectEvent(t, w, watch.Added, "b", b.ResourceVersion)
	expectEvent(t, w, watch.Modified, "a", a2.ResourceVersion)
	expectNoEvent(t, w, 100*time.Millisecond)

	// From the newest revision: nothing old, but what comes next.
	w = startWatch(t, s, "ns", ListOptions{ResourceVersion: a2.ResourceVersion})
	c := mustCreate(t, s, newPod("ns", "c", "", nil))
	expectEvent(t, w, watch.Added, "c", c.ResourceVersion)
}

func TestWatchTooOldIsGone(t *testing.T) {
	opts := defaultOptions()
	opts.eventWindow = 3
	s, _ := testStore(t, opts)
	first := mustCreate(t, s, newPod("ns", "p0", "", nil))
	var last *corev1.Pod
	for i := 1; i < 6; i++ {
		last = mustCreate(t, s, newPod("ns", fmt.Sprintf("p%d", i), "", nil))
	}
	waitForCache(t, s, last.ResourceVersion)
	w := startWatch(t, s, "ns", ListOptions{ResourceVersion: first.ResourceVersion})
	ev := nextEvent(t, w)
	status, ok := ev.Object.(*metav1.Status)
	if ev.Type != watch.Error || !ok || status.Code != http.StatusGone || status.Reason != metav1.StatusReasonExpired {
		t.Fatalf("got %s %+v, want an ERROR event with 410 Expired", ev.Type, ev.Object)
	}
	if _, open := <-w.ResultChan(); open {
		t.Error("watch still open after its error")
	}

	// The newest events are still in the window.
	lastRV, _ := strconv.Atoi(last.ResourceVersion)
	w = startWatch(t, s, "ns", ListOptions{ResourceVersion: strconv.Itoa(lastRV - 2)})
	expectEvent(t, w, watch.Added, "p4", "")
	expectEvent(t, w, watch.Added, "p5", "")
}

// An update that moves an object into a watcher's selector is ADDED for it, one that moves
// it out is DELETED (with the object as it was and the update's resourceVersion).
func TestWatchSelectorTransitions(t *testing.T) {
	s, _ := testStore(t, defaultOptions())
	byLabel := startWatch(t, s, "", ListOptions{ResourceVersion: "0", LabelSelector: labels.SelectorFromSet(labels.Set{"app": "web"})})
	byNode := startWatch(t, s, "", ListOptions{ResourceVersion: "0", FieldSelector: fields.OneTermEqualSelector("spec.nodeName", "node1")})
	otherNS := startWatch(t, s, "elsewhere", ListOptions{ResourceVersion: "0"})

	mustCreate(t, s, newPod("ns", "p", "", map[string]string{"app": "db"}))
	in := mustUpdate(t, s, "ns", "p", func(p *corev1.Pod) { p.Labels["app"] = "web" })
	expectEvent(t, byLabel, watch.Added, "p", in.ResourceVersion)
	still := mustUpdate(t, s, "ns", "p", func(p *corev1.Pod) { p.Labels["tier"] = "front" })
	expectEvent(t, byLabel, watch.Modified, "p", still.ResourceVersion)
	out := mustUpdate(t, s, "ns", "p", func(p *corev1.Pod) { p.Labels["app"] = "db" })
	gone := expectEvent(t, byLabel, watch.Deleted, "p", out.ResourceVersion)
	if gone.Labels["app"] != "web" {
		t.Errorf("DELETED on leaving the selector carries labels %v, want the last matching state", gone.Labels)
	}

	// Scheduling binds the pod to node1: the node's agent sees it appear.
	bound := mustUpdate(t, s, "ns", "p", func(p *corev1.Pod) { p.Spec.NodeName = "node1" })
	expectEvent(t, byNode, watch.Added, "p", bound.ResourceVersion)
	if _, err := s.Delete(context.Background(), "ns", "p", nil, nil); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, byNode, watch.Deleted, "p", "")

	expectNoEvent(t, byLabel, 100*time.Millisecond)
	expectNoEvent(t, otherNS, 10*time.Millisecond)
}

func TestWatchBookmarks(t *testing.T) {
	s, _ := testStore(t, fastOptions())
	w := startWatch(t, s, "", ListOptions{ResourceVersion: "0", AllowWatchBookmarks: true, LabelSelector: labels.SelectorFromSet(labels.Set{"app": "web"})})
	noBookmarks := startWatch(t, s, "", ListOptions{ResourceVersion: "0", LabelSelector: labels.SelectorFromSet(labels.Set{"app": "web"})})

	// A pod this watcher does not select still moves its resourceVersion on.
	other := mustCreate(t, s, newPod("ns", "other", "", nil))
	ev := nextEvent(t, w)
	pod, ok := ev.Object.(*corev1.Pod)
	if ev.Type != watch.Bookmark || !ok || pod.ResourceVersion != other.ResourceVersion || pod.Name != "" {
		t.Fatalf("got %s %T %s, want a BOOKMARK pod carrying only rv %s", ev.Type, ev.Object, describe(ev.Object), other.ResourceVersion)
	}
	if pod.Kind != "Pod" {
		t.Errorf("bookmark TypeMeta %+v", pod.TypeMeta)
	}
	select {
	case ev := <-noBookmarks.ResultChan():
		t.Errorf("watcher without allowWatchBookmarks got %s", ev.Type)
	case <-time.After(200 * time.Millisecond):
	}
}

func TestWatchListEndsInitialEventsWithBookmark(t *testing.T) {
	s, _ := testStore(t, defaultOptions())
	mustCreate(t, s, newPod("ns", "a", "", nil))
	b := mustCreate(t, s, newPod("ns", "b", "", nil))
	yes := true
	w := startWatch(t, s, "ns", ListOptions{SendInitialEvents: &yes, AllowWatchBookmarks: true,
		ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan})
	expectEvent(t, w, watch.Added, "a", "")
	expectEvent(t, w, watch.Added, "b", "")
	ev := nextEvent(t, w)
	pod, ok := ev.Object.(*corev1.Pod)
	if ev.Type != watch.Bookmark || !ok || pod.Annotations[metav1.InitialEventsAnnotationKey] != "true" || pod.ResourceVersion < b.ResourceVersion {
		t.Fatalf("got %s %+v, want the initial-events-end bookmark", ev.Type, ev.Object)
	}
	c := mustCreate(t, s, newPod("ns", "c", "", nil))
	expectEvent(t, w, watch.Added, "c", c.ResourceVersion)
}

// The initial-events-end bookmark is a bookmark: a watcher that does not allow
// bookmarks goes straight from the initial events to the changes.
func TestWatchListWithoutBookmarksHasNoInitialMark(t *testing.T) {
	s, _ := testStore(t, defaultOptions())
	mustCreate(t, s, newPod("ns", "a", "", nil))
	yes := true
	w := startWatch(t, s, "ns", ListOptions{SendInitialEvents: &yes,
		ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan})
	expectEvent(t, w, watch.Added, "a", "")
	c := mustCreate(t, s, newPod("ns", "c", "", nil))
	if ev := nextEvent(t, w); ev.Type != watch.Added || ev.Object.(*corev1.Pod).Name != "c" {
		t.Fatalf("got %s %+v after the initial events, want ADDED c (rv %s)", ev.Type, ev.Object, c.ResourceVersion)
	}
}

// A watcher that does not read is closed once its buffer is full; the others go on.
func TestSlowWatcherDoesNotBlockOthers(t *testing.T) {
	opts := defaultOptions()
	opts.watcherBuffer = 4
	s, _ := testStore(t, opts)
	slow := startWatch(t, s, "", ListOptions{ResourceVersion: "0"})
	fast := startWatch(t, s, "", ListOptions{ResourceVersion: "0"})
	received := make(chan struct{})
	go func() {
		for ev := range fast.ResultChan() {
			if ev.Type == watch.Added {
				received <- struct{}{}
			}
		}
		close(received)
	}()
	// In lock step with the fast watcher, so that only the slow one (which reads nothing)
	// can fall behind, however slowly this machine runs the reader.
	for i := range 20 {
		mustCreate(t, s, newPod("ns", fmt.Sprintf("p%d", i), "", nil))
		select {
		case _, ok := <-received:
			if !ok {
				t.Fatalf("the fast watcher was closed after %d events", i)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the fast watcher got no event for create %d: blocked", i)
		}
	}
	// The slow one got at most its buffer (plus the one in hand), then its channel closed.
	n := 0
	for range slow.ResultChan() {
		n++
	}
	if n >= 20 {
		t.Errorf("slow watcher got all %d events; it should have been closed", n)
	}
}

func TestWatchStopClosesChannel(t *testing.T) {
	s, _ := testStore(t, defaultOptions())
	w, err := s.Watch(context.Background(), "", ListOptions{ResourceVersion: "0"})
	if err != nil {
		t.Fatal(err)
	}
	w.Stop()
	select {
	case _, ok := <-w.ResultChan():
		if ok {
			t.Error("event after Stop")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Stop did not close the result channel")
	}
	if n := len(s.cache.watchers.all); n != 0 {
		t.Errorf("%d watchers still registered", n)
	}
}

// A list from etcd returns etcd's global revision, which writes to other resources moved
// past this cache's last event; a watch from it must start, not time out.
func TestWatchFromGlobalRevision(t *testing.T) {
	s, client := testStore(t, defaultOptions())
	mustCreate(t, s, newPod("ns", "a", "", nil))
	if _, err := client.Put(context.Background(), "/registry/configmaps/ns/x", "x"); err != nil {
		t.Fatal(err)
	}
	list := mustList(t, s, "ns", ListOptions{})
	w := startWatch(t, s, "ns", ListOptions{ResourceVersion: list.ResourceVersion, AllowWatchBookmarks: true})
	b := mustCreate(t, s, newPod("ns", "b", "", nil))
	expectEvent(t, w, watch.Added, "b", b.ResourceVersion)
}

// Watchers pinned to a field value (agents: spec.nodeName=<node>; the scheduler:
// spec.nodeName= for unscheduled pods) get exactly the events of their pods, once each.
func TestPinnedWatchers(t *testing.T) {
	s, _ := testStore(t, defaultOptions())
	sel := func(s string) ListOptions {
		fs, err := fields.ParseSelector(s)
		if err != nil {
			t.Fatal(err)
		}
		return ListOptions{ResourceVersion: "0", FieldSelector: fs}
	}
	node1 := startWatch(t, s, "", sel("spec.nodeName=node1"))
	node2 := startWatch(t, s, "", sel("spec.nodeName=node2"))
	unscheduled := startWatch(t, s, "", sel("spec.nodeName=,status.phase!=Succeeded"))
	notNode1 := startWatch(t, s, "", sel("spec.nodeName!=node1"))

	p := mustCreate(t, s, newPod("ns", "p", "", nil))
	expectEvent(t, unscheduled, watch.Added, "p", p.ResourceVersion)
	expectEvent(t, notNode1, watch.Added, "p", p.ResourceVersion)

	bound := mustUpdate(t, s, "ns", "p", func(p *corev1.Pod) { p.Spec.NodeName = "node1" })
	expectEvent(t, unscheduled, watch.Deleted, "p", bound.ResourceVersion)
	expectEvent(t, node1, watch.Added, "p", bound.ResourceVersion)
	expectEvent(t, notNode1, watch.Deleted, "p", bound.ResourceVersion)

	moved := mustUpdate(t, s, "ns", "p", func(p *corev1.Pod) { p.Spec.NodeName = "node2" })
	expectEvent(t, node1, watch.Deleted, "p", moved.ResourceVersion)
	expectEvent(t, node2, watch.Added, "p", moved.ResourceVersion)
	expectEvent(t, notNode1, watch.Added, "p", moved.ResourceVersion)

	// An unscheduled pod's deletion reaches the scheduler's watch exactly once.
	mustCreate(t, s, newPod("ns", "q", "", nil))
	expectEvent(t, unscheduled, watch.Added, "q", "")
	if _, err := s.Delete(context.Background(), "ns", "q", nil, nil); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, unscheduled, watch.Deleted, "q", "")
	// A Succeeded pod leaves the scheduler's selection though its nodeName stays "".
	mustCreate(t, s, newPod("ns", "r", "", nil))
	expectEvent(t, unscheduled, watch.Added, "r", "")
	mustUpdate(t, s, "ns", "r", func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded })
	expectEvent(t, unscheduled, watch.Deleted, "r", "")

	for name, w := range map[string]watch.Interface{"node1": node1, "node2": node2, "unscheduled": unscheduled} {
		t.Run(name, func(t *testing.T) { expectNoEvent(t, w, 50*time.Millisecond) })
	}
	if n := len(s.cache.watchers.pinned["spec.nodeName"]); n != 3 {
		t.Errorf("%d pinned values, want node1, node2 and the empty one", n)
	}
	node1.Stop()
	node2.Stop()
	unscheduled.Stop()
	s.cache.mu.RLock()
	defer s.cache.mu.RUnlock()
	if len(s.cache.watchers.pinned) != 0 || len(s.cache.watchers.unpinned) != 1 {
		t.Errorf("after Stop: pinned %v, %d unpinned", s.cache.watchers.pinned, len(s.cache.watchers.unpinned))
	}
}
