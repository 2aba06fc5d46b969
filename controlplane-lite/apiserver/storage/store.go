package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
)

// store implements Store: writes and consistent reads go to etcd, watches and
// resourceVersion="0" lists to the watch cache.
type store struct {
	res    Resource
	client *clientv3.Client
	codec  *codec
	keys   keys
	cache  *cache
	leases *leases // nil unless Resource.TTL is set
}

var _ Store = (*store)(nil)

// options are the knobs tests turn; New uses defaultOptions.
type options struct {
	// eventWindow is how many recent events the watch cache keeps for watches that resume
	// from a resourceVersion.
	eventWindow int
	// watcherBuffer is how many events a watcher may lag behind before it is closed.
	watcherBuffer int
	// bookmarkInterval is how often watchers that allow bookmarks get one.
	bookmarkInterval time.Duration
	// freshTimeout bounds how long a read or watch at a given resourceVersion waits for the
	// cache to reach it.
	freshTimeout time.Duration
}

func defaultOptions() options {
	return options{
		eventWindow:      4096,
		watcherBuffer:    1024,
		bookmarkInterval: 5 * time.Second,
		freshTimeout:     3 * time.Second,
	}
}

// New returns the Store of res on client and starts its watch cache, which lists res once,
// then follows one etcd watch until ctx ends. New returns once the cache holds that first
// list, so a Store is ready to serve when New returns.
func New(ctx context.Context, client *clientv3.Client, res Resource) (Store, error) {
	return newStore(ctx, client, res, defaultOptions())
}

func newStore(ctx context.Context, client *clientv3.Client, res Resource, opts options) (*store, error) {
	if err := validateResource(res); err != nil {
		return nil, err
	}
	if client == nil {
		return nil, errors.New("storage: nil etcd client")
	}
	s := &store{res: res, client: client, codec: newCodec(res), keys: newKeys(res)}
	if res.TTL > 0 {
		s.leases = newLeases(client, res.TTL)
	}
	c, err := startCache(ctx, s, opts)
	if err != nil {
		return nil, fmt.Errorf("storage: start watch cache of %s: %w", res.GroupResource, err)
	}
	s.cache = c
	return s, nil
}

func validateResource(res Resource) error {
	switch {
	case res.GroupResource.Resource == "":
		return errors.New("storage: Resource.GroupResource.Resource is empty")
	case res.GroupVersionKind.Kind == "" || res.GroupVersionKind.Version == "":
		return fmt.Errorf("storage: %s: incomplete GroupVersionKind %v", res.GroupResource, res.GroupVersionKind)
	case len(res.Prefix) < 2 || res.Prefix[0] != '/':
		return fmt.Errorf("storage: %s: Prefix %q must be an absolute key like /registry/pods", res.GroupResource, res.Prefix)
	case res.NewFunc == nil || res.NewListFunc == nil || res.AttrFunc == nil:
		return fmt.Errorf("storage: %s: NewFunc, NewListFunc and AttrFunc are required", res.GroupResource)
	case res.TTL < 0 || (res.TTL > 0 && res.TTL < time.Second):
		return fmt.Errorf("storage: %s: TTL %v must be zero or at least a second", res.GroupResource, res.TTL)
	}
	// The protobuf codec only knows the types registered in client-go's scheme.
	if _, _, err := scheme.Scheme.ObjectKinds(res.NewFunc()); err != nil {
		return fmt.Errorf("storage: %s: %w", res.GroupResource, err)
	}
	return nil
}

func (s *store) Create(ctx context.Context, obj runtime.Object) (runtime.Object, error) {
	obj = obj.DeepCopyObject()
	accessor, err := meta.Accessor(obj)
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if err := s.checkName(accessor.GetNamespace(), accessor.GetName()); err != nil {
		return nil, err
	}
	if accessor.GetResourceVersion() != "" {
		return nil, apierrors.NewBadRequest("resourceVersion should not be set on objects to be created")
	}
	key := s.keys.object(accessor.GetNamespace(), accessor.GetName())
	data, err := s.codec.encode(obj)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	putOpts, err := s.leases.putOptions(ctx)
	if err != nil {
		return nil, internalError(ctx, err)
	}
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(data), putOpts...)).
		Commit()
	if err != nil {
		return nil, internalError(ctx, err)
	}
	if !resp.Succeeded {
		return nil, apierrors.NewAlreadyExists(s.res.GroupResource, accessor.GetName())
	}
	accessor.SetResourceVersion(formatRV(resp.Header.Revision))
	return obj, nil
}

// checkName rejects keys that would land outside the resource's prefix or collide.
func (s *store) checkName(namespace, name string) error {
	if name == "" {
		return apierrors.NewBadRequest("name is required")
	}
	// A "/" or a dot-segment would put the object under another object's key.
	for _, segment := range []string{namespace, name} {
		if strings.Contains(segment, "/") || segment == "." || segment == ".." {
			return apierrors.NewBadRequest(fmt.Sprintf("invalid name or namespace %q: it may not contain '/' or be '.' or '..'", segment))
		}
	}
	if s.res.Namespaced && namespace == "" {
		return apierrors.NewBadRequest("namespace is required for a namespaced resource")
	}
	if !s.res.Namespaced && namespace != "" {
		return apierrors.NewBadRequest(fmt.Sprintf("%s is not namespaced", s.res.GroupResource))
	}
	return nil
}

func (s *store) Get(ctx context.Context, namespace, name string) (runtime.Object, error) {
	kv, err := s.getKV(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	obj, err := s.codec.decode(kv.Value, kv.ModRevision)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	return obj, nil
}

// kv is the part of an etcd key-value a store works with.
type kv struct {
	Value       []byte
	ModRevision int64
}

func (s *store) getKV(ctx context.Context, namespace, name string) (kv, error) {
	if err := s.checkName(namespace, name); err != nil {
		return kv{}, err
	}
	resp, err := s.client.Get(ctx, s.keys.object(namespace, name))
	if err != nil {
		return kv{}, internalError(ctx, err)
	}
	if len(resp.Kvs) == 0 {
		return kv{}, apierrors.NewNotFound(s.res.GroupResource, name)
	}
	return kv{Value: resp.Kvs[0].Value, ModRevision: resp.Kvs[0].ModRevision}, nil
}

func (s *store) GuaranteedUpdate(ctx context.Context, namespace, name string, tryUpdate UpdateFunc) (runtime.Object, error) {
	cur, err := s.getKV(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	key := s.keys.object(namespace, name)
	for {
		if err := ctx.Err(); err != nil {
			return nil, internalError(ctx, err)
		}
		current, err := s.codec.decode(cur.Value, cur.ModRevision)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		updated, err := tryUpdate(current.DeepCopyObject())
		if err != nil {
			return nil, err
		}
		data, err := s.prepareUpdate(updated, namespace, name, cur.ModRevision)
		if err != nil {
			return nil, err
		}
		if bytes.Equal(data, cur.Value) {
			// Nothing changed: a write would only bump the resourceVersion and wake every
			// watcher for nothing.
			return current, nil
		}
		putOpts, err := s.leases.putOptions(ctx)
		if err != nil {
			return nil, internalError(ctx, err)
		}
		resp, err := s.client.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", cur.ModRevision)).
			Then(clientv3.OpPut(key, string(data), putOpts...)).
			Else(clientv3.OpGet(key)).
			Commit()
		if err != nil {
			return nil, internalError(ctx, err)
		}
		if resp.Succeeded {
			if err := setResourceVersion(updated, resp.Header.Revision); err != nil {
				return nil, apierrors.NewInternalError(err)
			}
			return updated, nil
		}
		// Someone wrote in between: try again on what they wrote.
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return nil, apierrors.NewNotFound(s.res.GroupResource, name)
		}
		cur = kv{Value: kvs[0].Value, ModRevision: kvs[0].ModRevision}
	}
}

// prepareUpdate checks what tryUpdate returned against the key and the optimistic
// concurrency rule, and encodes it.
func (s *store) prepareUpdate(updated runtime.Object, namespace, name string, currentRev int64) ([]byte, error) {
	accessor, err := meta.Accessor(updated)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if accessor.GetName() != name || accessor.GetNamespace() != namespace {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the object's name %q and namespace %q do not match the updated key %q/%q",
			accessor.GetName(), accessor.GetNamespace(), namespace, name))
	}
	if rv := accessor.GetResourceVersion(); rv != "" && rv != formatRV(currentRev) {
		return nil, conflictError(s.res.GroupResource, name)
	}
	data, err := s.codec.encode(updated)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	return data, nil
}

func (s *store) Delete(ctx context.Context, namespace, name string, preconditions *metav1.Preconditions,
	validate ValidateDeleteFunc) (runtime.Object, error) {
	cur, err := s.getKV(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	key := s.keys.object(namespace, name)
	for {
		current, err := s.codec.decode(cur.Value, cur.ModRevision)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		if err := CheckPreconditions(s.res.GroupResource, name, preconditions, current); err != nil {
			return nil, err
		}
		// validate sees exactly the revision the compare-and-swap below deletes, so a
		// finalizer added meanwhile is never deleted with the object.
		if validate != nil {
			if err := validate(current); err != nil {
				return nil, err
			}
		}
		resp, err := s.client.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", cur.ModRevision)).
			Then(clientv3.OpDelete(key)).
			Else(clientv3.OpGet(key)).
			Commit()
		if err != nil {
			return nil, internalError(ctx, err)
		}
		if resp.Succeeded {
			return current, nil
		}
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return nil, apierrors.NewNotFound(s.res.GroupResource, name)
		}
		cur = kv{Value: kvs[0].Value, ModRevision: kvs[0].ModRevision}
	}
}

// CheckPreconditions answers 409 Conflict, worded as kube-apiserver does, when obj is not
// the object DeleteOptions.Preconditions p names. A nil p always passes.
func CheckPreconditions(gr schema.GroupResource, name string, p *metav1.Preconditions, obj runtime.Object) error {
	if p == nil {
		return nil
	}
	accessor, err := meta.Accessor(obj)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	if p.UID != nil && *p.UID != accessor.GetUID() {
		return apierrors.NewConflict(gr, name, fmt.Errorf(
			"Precondition failed: UID in precondition: %v, UID in object meta: %v", *p.UID, accessor.GetUID()))
	}
	if p.ResourceVersion != nil && *p.ResourceVersion != accessor.GetResourceVersion() {
		return apierrors.NewConflict(gr, name, fmt.Errorf(
			"Precondition failed: ResourceVersion in precondition: %v, ResourceVersion in object meta: %v",
			*p.ResourceVersion, accessor.GetResourceVersion()))
	}
	return nil
}
