package storage

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
)

// Resource describes one kind of object a Store keeps.
type Resource struct {
	// GroupResource names the resource in errors, e.g. {Group: "apps", Resource: "replicasets"}.
	GroupResource schema.GroupResource
	// GroupVersionKind is the kind stored and served, e.g. apps/v1 ReplicaSet.
	GroupVersionKind schema.GroupVersionKind
	// Prefix is the etcd key prefix without a trailing slash, e.g. "/registry/replicasets"
	// or "/registry/minions" for nodes. Keys are Prefix/<namespace>/<name> for namespaced
	// resources and Prefix/<name> otherwise.
	Prefix     string
	Namespaced bool
	// NewFunc returns an empty object (e.g. &appsv1.ReplicaSet{}); NewListFunc an empty list.
	NewFunc     func() runtime.Object
	NewListFunc func() runtime.Object
	// AttrFunc returns the labels and the selectable fields of an object. The fields always
	// include metadata.name and metadata.namespace; pods add spec.nodeName, status.phase, ...
	AttrFunc func(obj runtime.Object) (labels.Set, fields.Set, error)
	// TTL, when set, makes etcd delete an object about this long after its last write
	// (kube-apiserver keeps Events for --event-ttl, 1h). Zero keeps objects until deleted.
	TTL time.Duration
}

// ListOptions carries the parts of metav1.ListOptions a Store acts on, already parsed.
type ListOptions struct {
	LabelSelector        labels.Selector // nil means everything
	FieldSelector        fields.Selector // nil means everything
	ResourceVersion      string
	ResourceVersionMatch metav1.ResourceVersionMatch
	Limit                int64
	Continue             string
	AllowWatchBookmarks  bool
	SendInitialEvents    *bool
}

// UpdateFunc receives a private copy of the current object and returns the object to store.
// Returning an error aborts the update and the error is returned unchanged. The Store takes
// the returned object over (it sets its resourceVersion and TypeMeta); it may be called
// more than once when another writer races the update.
type UpdateFunc func(current runtime.Object) (runtime.Object, error)

// ValidateDeleteFunc decides whether current, the stored state a Delete is about to remove,
// may be removed; the apiserver refuses with an error when finalizers or a grace period
// appeared since it looked. It must not modify current.
type ValidateDeleteFunc func(current runtime.Object) error

// Store is the storage of one resource on etcd, with a watch cache in front of it.
// All errors are *apierrors.StatusError values (NotFound, AlreadyExists, Conflict, Gone,
// ...) built with the Resource's GroupResource, so the REST layer returns them as they are.
type Store interface {
	// Create stores a new object; it fails with AlreadyExists when the key exists.
	// The returned object carries the new resourceVersion.
	Create(ctx context.Context, obj runtime.Object) (runtime.Object, error)
	// Get reads one object from etcd (a quorum read).
	Get(ctx context.Context, namespace, name string) (runtime.Object, error)
	// List returns a list object (NewListFunc's type) with ListMeta.ResourceVersion set.
	// resourceVersion="" reads etcd; "0" or a given RV with NotOlderThan is served from
	// the watch cache. namespace "" lists across all namespaces.
	List(ctx context.Context, namespace string, opts ListOptions) (runtime.Object, error)
	// GuaranteedUpdate reads the current object, calls tryUpdate and writes the result with
	// a compare-and-swap on the mod revision, retrying on races. If the object tryUpdate
	// returns carries a non-empty resourceVersion different from the stored one, the
	// update fails with Conflict (optimistic concurrency for PUT).
	GuaranteedUpdate(ctx context.Context, namespace, name string, tryUpdate UpdateFunc) (runtime.Object, error)
	// Delete removes the object, checking the optional preconditions (uid, resourceVersion)
	// and then the optional validate against the state it is about to delete; both run
	// again on every retry of the compare-and-swap, so what they approve is exactly what is
	// deleted. It returns the last stored state; an error of validate aborts the delete
	// and is returned unchanged.
	Delete(ctx context.Context, namespace, name string, preconditions *metav1.Preconditions,
		validate ValidateDeleteFunc) (runtime.Object, error)
	// Watch streams changes after opts.ResourceVersion from the watch cache, filtered by
	// namespace and selectors ("" or "0" start with synthetic ADDED events of the current
	// state; a RV older than the cache's window gets, like kube-apiserver, a watch whose
	// only event is an ERROR carrying the 410 Gone Status). Bookmarks are sent when
	// opts.AllowWatchBookmarks is set. Event objects are shared between watchers: copy
	// before modifying.
	Watch(ctx context.Context, namespace string, opts ListOptions) (watch.Interface, error)
}
