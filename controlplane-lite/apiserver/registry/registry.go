package registry

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/controlplane-lite/apiserver/storage"
)

// Definition describes one served resource: where it is stored, how it is named in
// discovery, and how the apiserver defaults, validates and prints it.
type Definition struct {
	storage.Resource

	Singular   string
	ShortNames []string
	Categories []string
	// ListKind is the kind of the list type, e.g. "PodList".
	ListKind string
	// Verbs are the discovery verbs of the main resource, e.g. create, delete,
	// deletecollection, get, list, patch, update, watch.
	Verbs []string

	Strategy Strategy
	// Subresources by name: "status", "scale", "binding".
	Subresources map[string]Subresource
}

// Strategy is the per-resource behaviour of create, update and delete.
type Strategy interface {
	// PrepareForCreate clears what a client may not set on create (for most resources the
	// status) and sets metadata.generation to 1 where the resource has a spec.
	PrepareForCreate(ctx context.Context, obj runtime.Object)
	// PrepareForUpdate keeps what a client may not change through the main resource (the
	// status, from old) and bumps metadata.generation when the spec changed.
	PrepareForUpdate(ctx context.Context, obj, old runtime.Object)
	// Default fills server-side defaults, exactly as kube-apiserver does for the fields
	// the resource has (e.g. a pod template's imagePullPolicy, restartPolicy, dnsPolicy).
	Default(obj runtime.Object)
	// Validate and ValidateUpdate return field errors; the apiserver turns them into a
	// 422 Invalid Status naming each field.
	Validate(ctx context.Context, obj runtime.Object) field.ErrorList
	ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList
	// GracefulDelete reports whether a delete of obj with these options only marks it
	// (sets deletionTimestamp and deletionGracePeriodSeconds) instead of removing it; pods
	// bound to a node are deleted gracefully unless the grace period is 0.
	GracefulDelete(ctx context.Context, obj runtime.Object, options *metav1.DeleteOptions) bool
	// ConvertToTable prints one object or a list (NewListFunc's type) as a Table, with the
	// columns kubectl shows for the resource; wide adds the -o wide columns' data (the
	// table always lists every column definition, wide ones with priority 1).
	ConvertToTable(ctx context.Context, obj runtime.Object) (*metav1.Table, error)
}

// Subresource is a subresource of a Definition.
type Subresource struct {
	// GroupVersionKind of the object the subresource speaks (v1 Pod for pods/status,
	// autoscaling/v1 Scale for replicasets/scale, v1 Binding for pods/binding).
	GroupVersionKind schema.GroupVersionKind
	Verbs            []string
	// New returns an empty object of GroupVersionKind.
	New func() runtime.Object

	// Status: the update strategy applied when the parent is written through the
	// subresource (keep the spec from old, validate the status).
	Status StatusStrategy

	// Get derives the subresource's object from the parent (scale: Scale from a ReplicaSet).
	Get func(parent runtime.Object) (runtime.Object, error)
	// Apply writes the subresource's object onto a private copy of the parent and returns
	// the parent to store (scale: spec.replicas; binding: spec.nodeName, failing with
	// Conflict when already bound).
	Apply func(ctx context.Context, parent, sub runtime.Object) (runtime.Object, error)
}

// StatusStrategy is the update strategy of a status subresource.
type StatusStrategy interface {
	PrepareForUpdate(ctx context.Context, obj, old runtime.Object)
	ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList
}
