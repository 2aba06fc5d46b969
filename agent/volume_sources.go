package agent

import (
	"context"
	"fmt"
	"sync"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// sourceKey names one configMap or secret a pod's volumes project.
type sourceKey struct {
	secret          bool
	namespace, name string
}

func (k sourceKey) String() string {
	kind := "configmap"
	if k.secret {
		kind = "secret"
	}
	return fmt.Sprintf("%s %s/%s", kind, k.namespace, k.name)
}

// watchedSource is a single-object watch (fieldSelector metadata.name), as kubelet's
// Watch change-detection strategy keeps one per object in use.
type watchedSource struct {
	store  cache.Store
	synced func() bool
	stop   context.CancelFunc
	pods   map[types.UID]struct{}
}

// volumeSources implements volumes.Sources: it serves configMaps and secrets from watches
// on the objects pods use, and wakes those pods' workers when one changes, so an edit
// reaches the files in the pod within seconds. Until a watch has synced it asks the
// apiserver directly.
type volumeSources struct {
	client kubernetes.Interface
	kick   func(types.UID)

	mu      sync.Mutex
	base    context.Context // the agent's; nil until run, canceled when it stops
	watched map[sourceKey]*watchedSource
	byPod   map[types.UID][]sourceKey
}

func newVolumeSources(client kubernetes.Interface, kick func(types.UID)) *volumeSources {
	return &volumeSources{client: client, kick: kick, watched: map[sourceKey]*watchedSource{}, byPod: map[types.UID][]sourceKey{}}
}

// run lets watches start and stops all of them when ctx ends.
func (s *volumeSources) run(ctx context.Context) {
	s.mu.Lock()
	s.base = ctx
	s.mu.Unlock()
	<-ctx.Done()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, w := range s.watched {
		w.stop()
		delete(s.watched, k)
	}
	s.byPod = map[types.UID][]sourceKey{}
}

// podSources lists the configMaps and secrets the pod's volumes refer to.
func podSources(pod *v1.Pod) []sourceKey {
	var keys []sourceKey
	add := func(secret bool, name string) {
		keys = append(keys, sourceKey{secret: secret, namespace: pod.Namespace, name: name})
	}
	for _, vol := range pod.Spec.Volumes {
		switch {
		case vol.ConfigMap != nil:
			add(false, vol.ConfigMap.Name)
		case vol.Secret != nil:
			add(true, vol.Secret.SecretName)
		case vol.Projected != nil:
			for _, p := range vol.Projected.Sources {
				if p.ConfigMap != nil {
					add(false, p.ConfigMap.Name)
				}
				if p.Secret != nil {
					add(true, p.Secret.Name)
				}
			}
		}
	}
	return keys
}

// track starts watching what the pod uses (once per pod; a pod's volumes are immutable).
func (s *volumeSources) track(ctx context.Context, pod *v1.Pod) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byPod[pod.UID]; ok || s.base == nil || s.base.Err() != nil {
		return
	}
	keys := podSources(pod)
	s.byPod[pod.UID] = keys
	for _, k := range keys {
		w, ok := s.watched[k]
		if !ok {
			w = s.startWatchLocked(k)
			s.watched[k] = w
			klog.FromContext(ctx).V(4).Info("Watching volume source", "source", k.String())
		}
		w.pods[pod.UID] = struct{}{}
	}
}

// untrack stops the watches no other pod needs.
func (s *volumeSources) untrack(uid types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.byPod[uid] {
		w, ok := s.watched[k]
		if !ok {
			continue
		}
		delete(w.pods, uid)
		if len(w.pods) == 0 {
			w.stop()
			delete(s.watched, k)
		}
	}
	delete(s.byPod, uid)
}

func (s *volumeSources) startWatchLocked(k sourceKey) *watchedSource {
	ctx, cancel := context.WithCancel(s.base)
	w := &watchedSource{stop: cancel, pods: map[types.UID]struct{}{}}
	notify := func(any) {
		s.mu.Lock()
		uids := make([]types.UID, 0, len(w.pods))
		for uid := range w.pods {
			uids = append(uids, uid)
		}
		s.mu.Unlock()
		for _, uid := range uids {
			s.kick(uid)
		}
	}
	store, controller := cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: s.listWatch(k),
		ObjectType:    sourceObjectType(k),
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { notify(obj) },
			UpdateFunc: func(_, obj any) { notify(obj) },
			DeleteFunc: notify,
		},
	})
	w.store, w.synced = store, controller.HasSynced
	go controller.RunWithContext(ctx)
	return w
}

func sourceObjectType(k sourceKey) runtime.Object {
	if k.secret {
		return &v1.Secret{}
	}
	return &v1.ConfigMap{}
}

func (s *volumeSources) listWatch(k sourceKey) cache.ListerWatcher {
	selector := fields.OneTermEqualSelector("metadata.name", k.name).String()
	cms, secrets := s.client.CoreV1().ConfigMaps(k.namespace), s.client.CoreV1().Secrets(k.namespace)
	// The wrapper tells the reflector whether the client can stream a watch-list (the
	// fake clientset of unit tests cannot).
	return cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			opts.FieldSelector = selector
			if k.secret {
				return secrets.List(ctx, opts)
			}
			return cms.List(ctx, opts)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.FieldSelector = selector
			if k.secret {
				return secrets.Watch(ctx, opts)
			}
			return cms.Watch(ctx, opts)
		},
	}, s.client)
}

// cached returns the watched object; found is false when no synced watch answers for it.
func (s *volumeSources) cached(k sourceKey) (obj any, exists, found bool) {
	s.mu.Lock()
	w, ok := s.watched[k]
	s.mu.Unlock()
	if !ok || !w.synced() {
		return nil, false, false
	}
	obj, exists, err := w.store.GetByKey(k.namespace + "/" + k.name)
	if err != nil {
		return nil, false, false
	}
	return obj, exists, true
}

func (s *volumeSources) ConfigMap(ctx context.Context, namespace, name string) (*v1.ConfigMap, error) {
	k := sourceKey{namespace: namespace, name: name}
	if obj, exists, found := s.cached(k); found {
		if !exists {
			return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, name)
		}
		return obj.(*v1.ConfigMap), nil
	}
	return s.client.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{})
}

func (s *volumeSources) Secret(ctx context.Context, namespace, name string) (*v1.Secret, error) {
	k := sourceKey{secret: true, namespace: namespace, name: name}
	if obj, exists, found := s.cached(k); found {
		if !exists {
			return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, name)
		}
		return obj.(*v1.Secret), nil
	}
	return s.client.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
}
