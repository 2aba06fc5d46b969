package storage

import (
	"context"
	"fmt"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
)

const fanoutWatchers = 100

// BenchmarkWatchFanout writes b.N pod updates through etcd while 100 watchers follow the
// resource (half of them everything, half a spec.nodeName selector that matches every
// other pod, like node agents), and reports how fast events reach every watcher.
func BenchmarkWatchFanout(b *testing.B) {
	opts := defaultOptions()
	opts.watcherBuffer = max(opts.watcherBuffer, 2*b.N+16)
	s, _ := testStore(b, opts)

	var wg sync.WaitGroup
	expected := 0
	for i := range fanoutWatchers {
		lo := ListOptions{ResourceVersion: "0"}
		want := b.N
		if i%2 == 1 {
			lo.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", "node1")
			want = (b.N + 1) / 2
		}
		w := startWatch(b, s, "", lo)
		expected += want
		wg.Go(func() { drain(b, w, want) })
	}

	b.ResetTimer()
	writeConcurrently(b, s, b.N)
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(expected)/b.Elapsed().Seconds(), "deliveries/s")
}

// drain reads n non-bookmark events from w.
func drain(b *testing.B, w watch.Interface, n int) {
	for got := 0; got < n; {
		ev, ok := <-w.ResultChan()
		if !ok {
			b.Errorf("watcher closed after %d of %d events", got, n)
			return
		}
		if ev.Type != watch.Bookmark {
			got++
		}
	}
}

// writeConcurrently creates n pods from a few goroutines, so that etcd's fsync latency does
// not hide the cache's own cost; even pods go to node1.
func writeConcurrently(b *testing.B, s Store, n int) {
	const writers = 8
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := w; i < n; i += writers {
				node := "node2"
				if i%2 == 0 {
					node = "node1"
				}
				if _, err := s.Create(context.Background(), newPod("bench", fmt.Sprintf("p%d", i), node, nil)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkCacheDispatch measures the cache alone: applying one event and fanning it out to
// 100 watchers, without etcd in the loop.
func BenchmarkCacheDispatch(b *testing.B) {
	opts := defaultOptions()
	opts.watcherBuffer = b.N + 16
	s, _ := testStore(b, opts)
	c := s.cache
	var wg sync.WaitGroup
	for i := range fanoutWatchers {
		lo := ListOptions{ResourceVersion: "0"}
		want := b.N
		if i%2 == 1 {
			lo.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", "node1")
			want = (b.N + 1) / 2
		}
		w := startWatch(b, s, "", lo)
		wg.Go(func() { drain(b, w, want) })
	}
	objs := make([]*cachedObject, b.N)
	for i := range objs {
		node := "node2"
		if i%2 == 0 {
			node = "node1"
		}
		pod := newPod("bench", fmt.Sprintf("p%d", i), node, nil)
		pod.ResourceVersion = fmt.Sprint(c.currentRev() + int64(i) + 1)
		co, err := c.newCachedObject(pod)
		if err != nil {
			b.Fatal(err)
		}
		objs[i] = co
	}
	base := c.currentRev()
	b.ResetTimer()
	for i, co := range objs {
		rev := base + int64(i) + 1
		c.applyDecoded([]decoded{{key: co.key, rev: rev, cur: co}}, rev)
	}
	wg.Wait()
}

// BenchmarkList lists 1000 pods, 100 of them on node1, from the watch cache and from etcd,
// with and without the agent's spec.nodeName selector.
func BenchmarkList(b *testing.B) {
	s, _ := testStore(b, defaultOptions())
	writeConcurrently(b, s, 1000)
	// writeConcurrently puts every other pod on node1; move most of them away to get 100.
	for i := 0; i < 1000; i += 2 {
		if i%10 != 0 {
			mustUpdate(b, s, "bench", fmt.Sprintf("p%d", i), func(p *corev1.Pod) { p.Spec.NodeName = "node2" })
		}
	}
	rev, err := s.cache.etcdRevision(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	waitForCache(b, s, formatRV(rev))
	onNode1 := fields.OneTermEqualSelector("spec.nodeName", "node1")
	for _, bc := range []struct {
		name string
		opts ListOptions
		want int
	}{
		{"cache/all", ListOptions{ResourceVersion: "0"}, 1000},
		{"cache/node1", ListOptions{ResourceVersion: "0", FieldSelector: onNode1}, 100},
		{"etcd/all", ListOptions{}, 1000},
		{"etcd/node1", ListOptions{FieldSelector: onNode1}, 100},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				obj, err := s.List(context.Background(), "", bc.opts)
				if err != nil {
					b.Fatal(err)
				}
				if n := len(obj.(*corev1.PodList).Items); n != bc.want {
					b.Fatalf("listed %d pods, want %d", n, bc.want)
				}
			}
		})
	}
}

// BenchmarkCreate measures writes through etcd (one fsync each) from 8 writers.
func BenchmarkCreate(b *testing.B) {
	s, _ := testStore(b, defaultOptions())
	b.ResetTimer()
	writeConcurrently(b, s, b.N)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
}
