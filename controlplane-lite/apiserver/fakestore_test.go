package apiserver

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-sh/skiff/controlplane-lite/apiserver/storage"
)

// memStore is an in-memory storage.Store for the HTTP layer's tests: it keeps
// objects in a map, numbers revisions from a counter shared by all stores of a test
// server (as etcd does), and replays its event history to watchers.
type memStore struct {
	res storage.Resource
	rev *atomic.Int64

	mu       sync.Mutex
	objs     map[string]runtime.Object
	history  []watch.Event
	watchers map[*memWatcher]struct{}
}

func newMemStore(res storage.Resource, rev *atomic.Int64) *memStore {
	return &memStore{res: res, rev: rev, objs: map[string]runtime.Object{}, watchers: map[*memWatcher]struct{}{}}
}

func (s *memStore) key(ns, name string) string { return ns + "/" + name }

func accessor(obj runtime.Object) metav1.Object {
	m, err := meta.Accessor(obj)
	if err != nil {
		panic(err)
	}
	return m
}

// nextRV must be called with s.mu held.
func (s *memStore) stamp(obj runtime.Object) runtime.Object {
	out := obj.DeepCopyObject()
	accessor(out).SetResourceVersion(strconv.FormatInt(s.rev.Add(1), 10))
	return out
}

func (s *memStore) Create(_ context.Context, obj runtime.Object) (runtime.Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := accessor(obj)
	k := s.key(m.GetNamespace(), m.GetName())
	if _, ok := s.objs[k]; ok {
		return nil, apierrors.NewAlreadyExists(s.res.GroupResource, m.GetName())
	}
	stored := s.stamp(obj)
	s.objs[k] = stored
	s.emit(watch.Added, stored)
	return stored.DeepCopyObject(), nil
}

func (s *memStore) Get(_ context.Context, ns, name string) (runtime.Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	obj, ok := s.objs[s.key(ns, name)]
	if !ok {
		return nil, apierrors.NewNotFound(s.res.GroupResource, name)
	}
	return obj.DeepCopyObject(), nil
}

func (s *memStore) matches(obj runtime.Object, ns string, opts storage.ListOptions) bool {
	m := accessor(obj)
	if ns != "" && m.GetNamespace() != ns {
		return false
	}
	ls, fs, err := s.res.AttrFunc(obj)
	if err != nil {
		return false
	}
	if opts.LabelSelector != nil && !opts.LabelSelector.Matches(ls) {
		return false
	}
	return opts.FieldSelector == nil || opts.FieldSelector.Matches(fs)
}

func (s *memStore) List(_ context.Context, ns string, opts storage.ListOptions) (runtime.Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var items []runtime.Object
	for _, obj := range s.objs {
		if s.matches(obj, ns, opts) {
			items = append(items, obj.DeepCopyObject())
		}
	}
	list := s.res.NewListFunc()
	if err := meta.SetList(list, items); err != nil {
		return nil, err
	}
	lm, err := meta.ListAccessor(list)
	if err != nil {
		return nil, err
	}
	lm.SetResourceVersion(strconv.FormatInt(s.rev.Load(), 10))
	return list, nil
}

func (s *memStore) GuaranteedUpdate(_ context.Context, ns, name string, tryUpdate storage.UpdateFunc) (runtime.Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.key(ns, name)
	cur, ok := s.objs[k]
	if !ok {
		return nil, apierrors.NewNotFound(s.res.GroupResource, name)
	}
	out, err := tryUpdate(cur.DeepCopyObject())
	if err != nil {
		return nil, err
	}
	if rv := accessor(out).GetResourceVersion(); rv != "" && rv != accessor(cur).GetResourceVersion() {
		return nil, apierrors.NewConflict(s.res.GroupResource, name,
			errors.New("the object has been modified; please apply your changes to the latest version and try again"))
	}
	stored := s.stamp(out)
	s.objs[k] = stored
	s.emit(watch.Modified, stored)
	return stored.DeepCopyObject(), nil
}

func (s *memStore) Delete(_ context.Context, ns, name string, pre *metav1.Preconditions, validate storage.ValidateDeleteFunc) (runtime.Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.key(ns, name)
	cur, ok := s.objs[k]
	if !ok {
		return nil, apierrors.NewNotFound(s.res.GroupResource, name)
	}
	if err := storage.CheckPreconditions(s.res.GroupResource, name, pre, cur); err != nil {
		return nil, err
	}
	if validate != nil {
		if err := validate(cur); err != nil {
			return nil, err
		}
	}
	delete(s.objs, k)
	gone := s.stamp(cur)
	s.emit(watch.Deleted, gone)
	return gone.DeepCopyObject(), nil
}

// emit must be called with s.mu held.
func (s *memStore) emit(t watch.EventType, obj runtime.Object) {
	ev := watch.Event{Type: t, Object: obj}
	s.history = append(s.history, ev)
	for w := range s.watchers {
		w.send(ev)
	}
}

func (s *memStore) Watch(ctx context.Context, ns string, opts storage.ListOptions) (watch.Interface, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := &memWatcher{store: s, ns: ns, opts: opts, ch: make(chan watch.Event, 1000), done: make(chan struct{})}
	switch {
	case opts.SendInitialEvents != nil && *opts.SendInitialEvents:
		// A watch-list (client-go's default): the state, then the bookmark that ends it.
		for _, obj := range s.objs {
			w.send(watch.Event{Type: watch.Added, Object: obj})
		}
		mark := s.res.NewFunc()
		accessor(mark).SetResourceVersion(strconv.FormatInt(s.rev.Load(), 10))
		accessor(mark).SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "true"})
		w.ch <- watch.Event{Type: watch.Bookmark, Object: mark}
	case opts.ResourceVersion == "" || opts.ResourceVersion == "0":
		for _, obj := range s.objs {
			w.send(watch.Event{Type: watch.Added, Object: obj})
		}
	default:
		from, err := strconv.ParseInt(opts.ResourceVersion, 10, 64)
		if err != nil {
			return nil, apierrors.NewBadRequest("invalid resourceVersion")
		}
		for _, ev := range s.history {
			if rv, _ := strconv.ParseInt(accessor(ev.Object).GetResourceVersion(), 10, 64); rv > from {
				w.send(ev)
			}
		}
	}
	s.watchers[w] = struct{}{}
	go func() {
		select {
		case <-ctx.Done():
			w.Stop()
		case <-w.done:
		}
	}()
	return w, nil
}

type memWatcher struct {
	store *memStore
	ns    string
	opts  storage.ListOptions
	ch    chan watch.Event
	once  sync.Once
	done  chan struct{}
}

// send must be called with the store's mutex held.
func (w *memWatcher) send(ev watch.Event) {
	if !w.store.matches(ev.Object, w.ns, w.opts) {
		return
	}
	select {
	case w.ch <- watch.Event{Type: ev.Type, Object: ev.Object.DeepCopyObject()}:
	default: // a test that does not read 1000 events does not care
	}
}

func (w *memWatcher) Stop() {
	w.once.Do(func() {
		w.store.mu.Lock()
		delete(w.store.watchers, w)
		w.store.mu.Unlock()
		close(w.done)
		close(w.ch)
	})
}

func (w *memWatcher) ResultChan() <-chan watch.Event { return w.ch }
