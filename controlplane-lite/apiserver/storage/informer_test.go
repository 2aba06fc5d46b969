package storage

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	toolscache "k8s.io/client-go/tools/cache"
)

// listWatch adapts a Store to client-go's ListerWatcher the way the REST layer adapts it
// to HTTP: metav1.ListOptions in, selectors parsed.
// calls counts how a client-go reflector used a ListWatch.
type calls struct {
	mu                         sync.Mutex
	lists, watches, watchLists int
}

func listWatch(t *testing.T, s Store, namespace, fieldSelector string, c *calls) *toolscache.ListWatch {
	convert := func(o metav1.ListOptions) ListOptions {
		o.FieldSelector = fieldSelector
		ls, err := labels.Parse(o.LabelSelector)
		if err != nil {
			t.Errorf("label selector: %v", err)
		}
		fs, err := fields.ParseSelector(o.FieldSelector)
		if err != nil {
			t.Errorf("field selector: %v", err)
		}
		return ListOptions{
			LabelSelector: ls, FieldSelector: fs,
			ResourceVersion: o.ResourceVersion, ResourceVersionMatch: o.ResourceVersionMatch,
			Limit: o.Limit, Continue: o.Continue,
			AllowWatchBookmarks: o.AllowWatchBookmarks, SendInitialEvents: o.SendInitialEvents,
		}
	}
	return &toolscache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			c.mu.Lock()
			c.lists++
			c.mu.Unlock()
			return s.List(ctx, namespace, convert(o))
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			c.mu.Lock()
			c.watches++
			if o.SendInitialEvents != nil && *o.SendInitialEvents {
				c.watchLists++
			}
			c.mu.Unlock()
			return s.Watch(ctx, namespace, convert(o))
		},
	}
}

// listThenWatch opts a ListWatch out of the WatchList protocol: the classic list + watch.
type listThenWatch struct{ *toolscache.ListWatch }

func (listThenWatch) IsWatchListSemanticsUnSupported() bool { return true }

// A node agent's informer (pods with spec.nodeName=node1), over both client-go protocols,
// sees exactly its pods through creates, binds, updates, deletes and a forced relist.
func TestInformerFollowsNodePods(t *testing.T) {
	s, _ := testStore(t, fastOptions())
	mustCreate(t, s, newPod("ns", "early1", "node1", nil))
	mustCreate(t, s, newPod("ns", "early2", "node2", nil))

	for _, name := range []string{"watchlist", "list+watch"} {
		t.Run(name, func(t *testing.T) {
			var c calls
			var l toolscache.ListerWatcher = listWatch(t, s, "", "spec.nodeName=node1", &c)
			if name == "list+watch" {
				l = listThenWatch{l.(*toolscache.ListWatch)}
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			informer := toolscache.NewSharedIndexInformer(l, &corev1.Pod{}, 0, toolscache.Indexers{})
			go informer.RunWithContext(ctx)
			if !toolscache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
				t.Fatal("informer did not sync")
			}
			waitForKeys(t, informer, "ns/early1")

			suffix := name[:4]
			mustCreate(t, s, newPod("ns", "new-"+suffix, "", nil))
			mustUpdate(t, s, "ns", "new-"+suffix, func(p *corev1.Pod) { p.Spec.NodeName = "node1" })
			waitForKeys(t, informer, "ns/early1", "ns/new-"+suffix)

			// A relist in the cache closes every watch; client-go resumes from its last
			// resourceVersion (or, if that is gone, gets 410 and lists again).
			if err := s.cache.relist(ctx); err != nil {
				t.Fatal(err)
			}
			mustCreate(t, s, newPod("ns", "after-relist-"+suffix, "node1", nil))
			if _, err := s.Delete(ctx, "ns", "new-"+suffix, nil, nil); err != nil {
				t.Fatal(err)
			}
			waitForKeys(t, informer, "ns/after-relist-"+suffix, "ns/early1")
			if _, err := s.Delete(ctx, "ns", "after-relist-"+suffix, nil, nil); err != nil {
				t.Fatal(err)
			}

			c.mu.Lock()
			defer c.mu.Unlock()
			t.Logf("%s: %d lists, %d watches (%d watch-lists)", name, c.lists, c.watches, c.watchLists)
			if name == "watchlist" && (c.lists != 0 || c.watchLists < 1) {
				t.Errorf("the WatchList protocol was not used for the initial sync")
			}
			if name == "list+watch" && (c.lists < 1 || c.watchLists != 0) {
				t.Errorf("the classic list + watch was not used")
			}
			if c.watches < 2 {
				t.Errorf("%d watches: the relist did not make the reflector watch again", c.watches)
			}
		})
	}
}

func waitForKeys(t *testing.T, informer toolscache.SharedIndexInformer, want ...string) {
	t.Helper()
	sort.Strings(want)
	var got []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		got = informer.GetStore().ListKeys()
		sort.Strings(got)
		if fmt.Sprint(got) == fmt.Sprint(want) {
			return
		}
	}
	t.Fatalf("informer has %v, want %v", got, want)
}
