package storage

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/klog/v2"
)

// cachedObject is one object as the cache keeps it. obj is shared with every reader and
// never modified after it was decoded.
type cachedObject struct {
	key       string
	namespace string
	obj       runtime.Object
	labels    labels.Set
	fields    fields.Set
}

// cacheEvent is one change of one object, as kept in the event window.
type cacheEvent struct {
	typ watch.EventType // Added, Modified or Deleted
	rev int64
	// cur is the new state (nil for Deleted), prev the state before (nil for Added).
	cur, prev *cachedObject

	// prevAtRev is prev's content carrying rev as its resourceVersion: the object of a
	// DELETED event, and of the DELETED a watcher gets when an update takes the object out
	// of its selector (kube-apiserver does the same). Made on first use.
	prevAtRevOnce sync.Once
	prevAtRevObj  runtime.Object
}

func (e *cacheEvent) prevAtRev() runtime.Object {
	e.prevAtRevOnce.Do(func() {
		obj := e.prev.obj.DeepCopyObject()
		if accessor, err := meta.Accessor(obj); err == nil {
			accessor.SetResourceVersion(formatRV(e.rev))
		}
		e.prevAtRevObj = obj
	})
	return e.prevAtRevObj
}

// cache is the watch cache of one resource: the current objects, a window of recent
// events, and the watchers they are fanned out to, fed by one etcd watch.
type cache struct {
	s      *store
	opts   options
	logger klog.Logger
	// watchCtx carries the etcd watch; progress requests must use the same context so
	// they reach the same gRPC watch stream.
	watchCtx context.Context

	mu       sync.RWMutex
	objects  map[string]*cachedObject
	rev      int64 // every event up to rev has been applied
	window   eventWindow
	watchers watcherSet
	// revChanged is closed (and replaced) whenever rev advances.
	revChanged chan struct{}
	// stopped is set when the cache's context ended: it no longer follows etcd.
	stopped bool
}

// startCache lists the resource, then follows it from that revision in the background.
func startCache(ctx context.Context, s *store, opts options) (*cache, error) {
	c := &cache{
		s:          s,
		opts:       opts,
		logger:     klog.FromContext(ctx).WithValues("resource", s.res.GroupResource.String()),
		watchCtx:   clientv3.WithRequireLeader(ctx),
		watchers:   newWatcherSet(),
		revChanged: make(chan struct{}),
		window:     newEventWindow(opts.eventWindow),
	}
	if err := c.relist(ctx); err != nil {
		return nil, err
	}
	go c.run(ctx)
	go c.bookmarkLoop(ctx)
	return c, nil
}

// relist replaces the cache's content with a fresh list from etcd. The event window starts
// over at the list's revision, so every watcher is closed: they resume from their last
// resourceVersion, get 410 Gone if it predates the list, and list again.
func (c *cache) relist(ctx context.Context) error {
	page, err := c.s.readPages(ctx, c.s.keys.prefix, clientv3.GetPrefixRangeEnd(c.s.keys.prefix), 0, predicate{}, 0)
	if err != nil {
		return err
	}
	objects := make(map[string]*cachedObject, len(page.items))
	for _, obj := range page.items {
		co, err := c.newCachedObject(obj)
		if err != nil {
			return err
		}
		objects[co.key] = co
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.objects = objects
	c.window.reset(page.rev)
	for w := range c.watchers.all {
		c.removeWatcherLocked(w)
	}
	c.advanceLocked(page.rev)
	return nil
}

func (c *cache) newCachedObject(obj runtime.Object) (*cachedObject, error) {
	accessor, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	l, f, err := c.s.res.AttrFunc(obj)
	if err != nil {
		return nil, fmt.Errorf("attributes of %s/%s: %w", accessor.GetNamespace(), accessor.GetName(), err)
	}
	return &cachedObject{
		key:       c.s.keys.object(accessor.GetNamespace(), accessor.GetName()),
		namespace: accessor.GetNamespace(),
		obj:       obj,
		labels:    l,
		fields:    f,
	}, nil
}

func (c *cache) advanceLocked(rev int64) {
	if rev <= c.rev {
		return
	}
	c.rev = rev
	close(c.revChanged)
	c.revChanged = make(chan struct{})
}

// run follows etcd until ctx ends, relisting when the watch cannot resume.
func (c *cache) run(ctx context.Context) {
	defer c.stopAll()
	const minBackoff, maxBackoff = 100 * time.Millisecond, 5 * time.Second
	backoff := minBackoff
	for {
		started := time.Now()
		err := c.follow(ctx)
		if ctx.Err() != nil {
			return
		}
		if c.s.client.Ctx().Err() != nil {
			// The etcd client was closed under us: nothing left to follow.
			c.logger.V(2).Info("etcd client closed, watch cache stops")
			return
		}
		if time.Since(started) > time.Minute {
			backoff = minBackoff // it was healthy for a while: this is a new failure
		}
		c.logger.Info("etcd watch ended, resuming", "err", err, "rev", c.currentRev(), "backoff", backoff)
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, maxBackoff)
		if errors.Is(err, errCompacted) {
			// The history after our revision is gone: start over from a fresh list.
			if err := c.relist(ctx); err != nil {
				c.logger.Error(err, "Relist after compaction failed")
			}
		}
	}
}

var errCompacted = errors.New("watch history compacted")

// follow watches etcd from the cache's revision until the watch fails.
func (c *cache) follow(ctx context.Context) error {
	from := c.currentRev() + 1
	wch := c.s.client.Watch(c.watchCtx, c.s.keys.prefix, clientv3.WithPrefix(), clientv3.WithRev(from), clientv3.WithProgressNotify())
	for resp := range wch {
		if resp.CompactRevision != 0 {
			return fmt.Errorf("%w: at %d, wanted %d", errCompacted, resp.CompactRevision, from)
		}
		if err := resp.Err(); err != nil {
			return err
		}
		if resp.IsProgressNotify() {
			c.mu.Lock()
			c.advanceLocked(resp.Header.Revision)
			c.mu.Unlock()
			continue
		}
		c.apply(resp.Events)
	}
	return errors.New("watch channel closed")
}

// decoded is an etcd event decoded outside the cache lock.
type decoded struct {
	key string
	rev int64
	cur *cachedObject // nil for a delete
}

// apply decodes etcd events, applies them, and fans them out to the watchers.
func (c *cache) apply(events []*clientv3.Event) {
	batch := make([]decoded, 0, len(events))
	for _, ev := range events {
		d := decoded{key: string(ev.Kv.Key), rev: ev.Kv.ModRevision}
		if ev.Type == mvccpb.PUT {
			obj, err := c.s.codec.decode(ev.Kv.Value, ev.Kv.ModRevision)
			if err == nil {
				d.cur, err = c.newCachedObject(obj)
			}
			if err != nil {
				// An undecodable value cannot be served; skip it rather than stall the resource.
				c.logger.Error(err, "Skipping undecodable object", "key", d.key, "rev", d.rev)
				continue
			}
		}
		batch = append(batch, d)
	}
	if n := len(events); n > 0 {
		c.applyDecoded(batch, events[n-1].Kv.ModRevision)
	}
}

// applyDecoded applies a batch of events under one lock, fans each out, and moves the
// cache to rev.
func (c *cache) applyDecoded(batch []decoded, rev int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range batch {
		if d.rev <= c.rev {
			// Already part of the state, e.g. read by a relist that raced this watch.
			continue
		}
		ev := c.applyLocked(d)
		if ev == nil {
			continue
		}
		c.window.add(ev)
		c.watchers.candidates(ev, func(w *cacheWatcher) {
			if out, ok := w.convert(ev); ok {
				c.sendLocked(w, out, ev.rev)
			}
		})
	}
	c.advanceLocked(rev)
}

// applyLocked updates the object map and returns the event, or nil when a delete names an
// object the cache never had.
func (c *cache) applyLocked(d decoded) *cacheEvent {
	prev := c.objects[d.key]
	switch {
	case d.cur == nil && prev == nil:
		return nil
	case d.cur == nil:
		delete(c.objects, d.key)
		return &cacheEvent{typ: watch.Deleted, rev: d.rev, prev: prev}
	case prev == nil:
		c.objects[d.key] = d.cur
		return &cacheEvent{typ: watch.Added, rev: d.rev, cur: d.cur}
	default:
		c.objects[d.key] = d.cur
		return &cacheEvent{typ: watch.Modified, rev: d.rev, cur: d.cur, prev: prev}
	}
}

// sendLocked queues an event for w without blocking; a watcher too slow to keep a full
// buffer is closed, and its client resumes from the last resourceVersion it saw.
func (c *cache) sendLocked(w *cacheWatcher, ev watch.Event, rev int64) {
	select {
	case w.input <- ev:
		w.lastRev = rev
	default:
		c.logger.V(2).Info("Closing watcher that fell behind", "buffer", cap(w.input))
		c.removeWatcherLocked(w)
	}
}

func (c *cache) removeWatcherLocked(w *cacheWatcher) {
	if c.watchers.remove(w) {
		close(w.input)
	}
}

func (c *cache) stopAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	for w := range c.watchers.all {
		c.removeWatcherLocked(w)
	}
}

func (c *cache) currentRev() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.rev
}

// bookmarkLoop periodically tells bookmark-enabled watchers how far the cache got, so that
// a watcher of a quiet resource can resume from a recent resourceVersion.
func (c *cache) bookmarkLoop(ctx context.Context) {
	t := time.NewTicker(c.opts.bookmarkInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		for w := range c.watchers.all {
			if w.bookmarks && w.lastRev < c.rev {
				select {
				case w.input <- c.bookmark(c.rev, false):
					w.lastRev = c.rev
				default: // the watcher is busy with real events; skip this one
				}
			}
		}
		c.mu.Unlock()
	}
}

// bookmark returns a BOOKMARK event: an empty object of the resource carrying only rev.
func (c *cache) bookmark(rev int64, initialEventsEnd bool) watch.Event {
	obj := c.s.res.NewFunc()
	obj.GetObjectKind().SetGroupVersionKind(c.s.res.GroupVersionKind)
	if accessor, err := meta.Accessor(obj); err == nil {
		accessor.SetResourceVersion(formatRV(rev))
		if initialEventsEnd {
			accessor.SetAnnotations(map[string]string{"k8s.io/initial-events-end": "true"})
		}
	}
	return watch.Event{Type: watch.Bookmark, Object: obj}
}

// waitFresh waits until the cache has applied every event up to rev, asking etcd for
// progress notifications so that writes to other resources also move it forward.
func (c *cache) waitFresh(ctx context.Context, rev int64) error {
	timeout := time.NewTimer(c.opts.freshTimeout)
	defer timeout.Stop()
	retry := time.NewTicker(100 * time.Millisecond)
	defer retry.Stop()
	for requestProgress := true; ; {
		c.mu.RLock()
		cur, changed := c.rev, c.revChanged
		c.mu.RUnlock()
		if cur >= rev {
			return nil
		}
		if requestProgress {
			// etcd answers only when all watches on the stream are in sync, so ask again
			// from time to time rather than once.
			if err := c.s.client.RequestProgress(c.watchCtx); err != nil {
				c.logger.V(4).Info("Progress request failed", "err", err)
			}
			requestProgress = false
		}
		select {
		case <-changed:
		case <-retry.C:
			requestProgress = true
		case <-timeout.C:
			return tooLargeError(rev, cur)
		case <-ctx.Done():
			return internalError(ctx, ctx.Err())
		}
	}
}

// etcdRevision returns etcd's current revision with a quorum read.
func (c *cache) etcdRevision(ctx context.Context) (int64, error) {
	resp, err := c.s.client.Get(ctx, c.s.keys.prefix, clientv3.WithCountOnly(), clientv3.WithLimit(1))
	if err != nil {
		return 0, internalError(ctx, err)
	}
	return resp.Header.Revision, nil
}

// snapshotLocked returns the objects of namespace ("" for all) passing pred, by key.
func (c *cache) snapshotLocked(namespace string, pred predicate) []*cachedObject {
	var out []*cachedObject
	for _, co := range c.objects {
		if namespace != "" && co.namespace != namespace {
			continue
		}
		if pred.matches(co.labels, co.fields) {
			out = append(out, co)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

// list serves a list from the cache once it is at least at rev.
func (c *cache) list(ctx context.Context, namespace string, pred predicate, rev int64) (runtime.Object, error) {
	if rev > 0 {
		if err := c.waitFresh(ctx, rev); err != nil {
			return nil, err
		}
	}
	c.mu.RLock()
	if c.stopped {
		c.mu.RUnlock()
		return nil, c.stoppedError()
	}
	snap := c.snapshotLocked(c.namespaceFilter(namespace), pred)
	listRev := c.rev
	c.mu.RUnlock()
	items := make([]runtime.Object, len(snap))
	for i, co := range snap {
		// Callers own what List returns; the cached object is shared.
		items[i] = co.obj.DeepCopyObject()
	}
	return c.s.newList(items, listRev, "", nil)
}

func (c *cache) namespaceFilter(namespace string) string {
	if !c.s.res.Namespaced {
		return ""
	}
	return namespace
}

func (c *cache) stoppedError() error {
	return apierrors.NewServiceUnavailable(fmt.Sprintf("the watch cache of %s is stopped", c.s.res.GroupResource))
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
