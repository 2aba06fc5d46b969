package storage

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-sh/skiff/controlplane-lite/etcd"
	"github.com/skiff-sh/skiff/controlplane-lite/etcd/etcdtest"
)

// After a relist (what the cache does when etcd compacted the history its watch needed),
// watchers are closed and cannot resume from before the relist: client-go lists again.
func TestRelistClosesWatchersAndForgetsHistory(t *testing.T) {
	s, _ := testStore(t, defaultOptions())
	a := mustCreate(t, s, newPod("ns", "a", "", nil))
	w := startWatch(t, s, "", ListOptions{ResourceVersion: a.ResourceVersion})
	mustCreate(t, s, newPod("ns", "b", "", nil))
	expectEvent(t, w, watch.Added, "b", "")

	if err := s.cache.relist(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-w.ResultChan():
		if ok {
			t.Fatal("event after relist, want the watch closed")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("watch not closed by the relist")
	}
	resumed := startWatch(t, s, "", ListOptions{ResourceVersion: a.ResourceVersion})
	if ev := nextEvent(t, resumed); ev.Type != watch.Error {
		t.Fatalf("resume from before the relist: %s, want ERROR 410", ev.Type)
	}
	if list := mustList(t, s, "", ListOptions{ResourceVersion: "0"}); len(list.Items) != 2 {
		t.Errorf("cache holds %d pods after relist, want 2", len(list.Items))
	}
}

func TestStoppedCacheRefusesWatchAndList(t *testing.T) {
	_, client := etcdtest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	s, err := newStore(ctx, client, podResource(), defaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Watch(context.Background(), "", ListOptions{ResourceVersion: "0"})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-w.ResultChan():
	case <-time.After(5 * time.Second):
		t.Fatal("watch not closed when the store's context ended")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := s.Watch(context.Background(), "", ListOptions{ResourceVersion: "0"})
		if apierrors.IsServiceUnavailable(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("watch on a stopped cache: %v, want ServiceUnavailable", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := s.List(context.Background(), "", ListOptions{ResourceVersion: "0"}); !apierrors.IsServiceUnavailable(err) {
		t.Errorf("cache list on a stopped cache: %v, want ServiceUnavailable", err)
	}
}

// The watch cache follows etcd across an etcd restart without losing an event.
func TestCacheFollowsEtcdRestart(t *testing.T) {
	cfg := etcd.Config{DataDir: filepath.Join(t.TempDir(), "etcd"), ClientPort: etcdtest.FreePort(t), PeerPort: etcdtest.FreePort(t)}
	srv, err := etcd.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	client, err := etcd.NewClient(context.Background(), srv.Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := newStore(ctx, client, podResource(), defaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	a := mustCreate(t, s, newPod("ns", "a", "", nil))
	w := startWatch(t, s, "", ListOptions{ResourceVersion: a.ResourceVersion})

	srv.Close()
	srv, err = etcd.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("restart etcd: %v", err)
	}
	var b *corev1.Pod
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := s.Create(context.Background(), newPod("ns", "b", "", nil))
		if err == nil {
			b = out.(*corev1.Pod)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("create after etcd restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	expectEvent(t, w, watch.Added, "b", b.ResourceVersion)
	list := mustList(t, s, "", ListOptions{ResourceVersion: b.ResourceVersion, ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan})
	if len(list.Items) != 2 {
		t.Errorf("cache has %d pods after the etcd restart, want 2", len(list.Items))
	}
}

// A watch that must resume from a compacted revision reports errCompacted (run then
// relists).
func TestFollowDetectsCompaction(t *testing.T) {
	s, client := testStore(t, defaultOptions())
	mustCreate(t, s, newPod("ns", "a", "", nil))
	last := mustCreate(t, s, newPod("ns", "b", "", nil))
	rev, _ := strconv.ParseInt(last.ResourceVersion, 10, 64)
	if _, err := client.Compact(context.Background(), rev); err != nil {
		t.Fatal(err)
	}
	probe := &cache{s: s, opts: s.cache.opts, logger: s.cache.logger, watchCtx: s.cache.watchCtx,
		rev: 1, revChanged: make(chan struct{}), watchers: newWatcherSet(), window: newEventWindow(8)}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := probe.follow(ctx); !errors.Is(err, errCompacted) {
		t.Fatalf("follow from a compacted revision: %v, want errCompacted", err)
	}
}

// Closing the etcd client stops the cache instead of retrying forever.
func TestCacheStopsWhenClientCloses(t *testing.T) {
	_, shared := etcdtest.Start(t)
	client, err := etcd.NewClient(context.Background(), shared.Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	s, err := newStore(context.Background(), client, podResource(), defaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Watch(context.Background(), "", ListOptions{ResourceVersion: "0"})
	if err != nil {
		t.Fatal(err)
	}
	client.Close()
	select {
	case <-w.ResultChan():
	case <-time.After(5 * time.Second):
		t.Fatal("watch still open after the etcd client closed")
	}
}
