package storage

import (
	"context"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/watch"
)

func (s *store) Watch(ctx context.Context, namespace string, opts ListOptions) (watch.Interface, error) {
	rev, err := parseRV(opts.ResourceVersion)
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	return s.cache.watch(ctx, s.cache.namespaceFilter(namespace), newPredicate(opts), watchStart{
		rev:        rev,
		consistent: opts.ResourceVersion == "",
		initial:    sendInitialEvents(opts),
		bookmarks:  opts.AllowWatchBookmarks,
		// Like kube-apiserver, the end-of-initial-events bookmark is a bookmark: only
		// watchers that allow bookmarks get it.
		initialMark: opts.SendInitialEvents != nil && *opts.SendInitialEvents && opts.AllowWatchBookmarks,
	})
}

// sendInitialEvents reports whether a watch starts with ADDED events for the current state:
// when asked to (the WatchList protocol), and by default from "" or "0".
func sendInitialEvents(opts ListOptions) bool {
	if opts.SendInitialEvents != nil {
		return *opts.SendInitialEvents
	}
	return opts.ResourceVersion == "" || opts.ResourceVersion == "0"
}

// watchStart is where a watch begins.
type watchStart struct {
	rev        int64 // resume after rev (0: now)
	consistent bool  // resourceVersion "": start from at least etcd's current revision
	initial    bool  // begin with ADDED events of the current state
	bookmarks  bool
	// initialMark ends the initial events with the "k8s.io/initial-events-end" bookmark.
	initialMark bool
}

func (c *cache) watch(ctx context.Context, namespace string, pred predicate, start watchStart) (watch.Interface, error) {
	minRev := start.rev
	if start.consistent {
		rev, err := c.etcdRevision(ctx)
		if err != nil {
			return nil, err
		}
		minRev = rev
	}
	if minRev > 0 {
		if err := c.waitFresh(ctx, minRev); err != nil {
			return nil, err
		}
	}

	w := &cacheWatcher{
		namespace: namespace,
		pred:      pred,
		bookmarks: start.bookmarks,
		input:     make(chan watch.Event, c.opts.watcherBuffer),
		result:    make(chan watch.Event),
		done:      make(chan struct{}),
		cache:     c,
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil, c.stoppedError()
	}
	switch {
	case start.initial:
		for _, co := range c.snapshotLocked(namespace, pred) {
			w.initial = append(w.initial, watch.Event{Type: watch.Added, Object: co.obj})
		}
		if start.initialMark {
			w.initial = append(w.initial, c.bookmark(c.rev, true))
		}
	case start.rev > 0:
		events, ok := c.window.since(start.rev)
		if !ok {
			// kube-apiserver reports this inside the watch stream, which is where
			// client-go's reflector looks for it.
			return newErrorWatcher(tooOldError(start.rev, c.window.oldest)), nil
		}
		for _, ev := range events {
			if out, ok := w.convert(ev); ok {
				w.initial = append(w.initial, out)
			}
		}
	}
	w.lastRev = c.rev
	c.watchers.add(w)
	go w.process(ctx)
	return w, nil
}

// cacheWatcher is one client's watch on the cache. The cache queues events on input
// without blocking; process hands them to the client through result.
type cacheWatcher struct {
	namespace string
	pred      predicate
	bookmarks bool
	// initial events go out before anything from input.
	initial []watch.Event
	input   chan watch.Event // closed by the cache when it drops the watcher
	result  chan watch.Event
	done    chan struct{}
	stop    sync.Once
	cache   *cache
	// lastRev is the revision of the last event queued (guarded by cache.mu).
	lastRev int64
}

func (w *cacheWatcher) ResultChan() <-chan watch.Event { return w.result }

func (w *cacheWatcher) Stop() {
	w.stop.Do(func() {
		close(w.done)
		w.cache.mu.Lock()
		w.cache.removeWatcherLocked(w)
		w.cache.mu.Unlock()
	})
}

func (w *cacheWatcher) process(ctx context.Context) {
	defer close(w.result)
	defer w.Stop()
	for _, ev := range w.initial {
		if !w.deliver(ctx, ev) {
			return
		}
	}
	w.initial = nil
	for {
		select {
		case ev, ok := <-w.input:
			if !ok || !w.deliver(ctx, ev) {
				return
			}
		case <-w.done:
			return
		case <-ctx.Done():
			return
		}
	}
}

func (w *cacheWatcher) deliver(ctx context.Context, ev watch.Event) bool {
	select {
	case w.result <- ev:
		return true
	case <-w.done:
		return false
	case <-ctx.Done():
		return false
	}
}

// convert returns the event w sees for ev, if any. An update that moves an object into
// w's selection is an ADDED for w, one that moves it out a DELETED, as in kube-apiserver.
func (w *cacheWatcher) convert(ev *cacheEvent) (watch.Event, bool) {
	some := ev.cur
	if some == nil {
		some = ev.prev
	}
	if w.namespace != "" && some.namespace != w.namespace {
		return watch.Event{}, false
	}
	curPasses := ev.cur != nil && w.pred.matches(ev.cur.labels, ev.cur.fields)
	prevPasses := ev.prev != nil && w.pred.matches(ev.prev.labels, ev.prev.fields)
	switch {
	case curPasses && prevPasses:
		return watch.Event{Type: watch.Modified, Object: ev.cur.obj}, true
	case curPasses:
		return watch.Event{Type: watch.Added, Object: ev.cur.obj}, true
	case prevPasses:
		return watch.Event{Type: watch.Deleted, Object: ev.prevAtRev()}, true
	default:
		return watch.Event{}, false
	}
}

// errorWatcher is a watch that reports one error event and ends.
type errorWatcher struct {
	result chan watch.Event
}

func newErrorWatcher(err *apierrors.StatusError) *errorWatcher {
	ch := make(chan watch.Event, 1)
	status := err.Status()
	ch <- watch.Event{Type: watch.Error, Object: &status}
	close(ch)
	return &errorWatcher{result: ch}
}

func (w *errorWatcher) ResultChan() <-chan watch.Event { return w.result }
func (w *errorWatcher) Stop()                          {}
