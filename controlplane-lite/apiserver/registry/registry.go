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
	// status) and sets metadata.generation to 1 where the resource has a spec. It applies
	// Default first (defaults are idempotent), so callers may call Default before or after.
	PrepareForCreate(ctx context.Context, obj runtime.Object)
	// PrepareForUpdate keeps what a client may not change through the main resource (the
	// status, from old) and bumps metadata.generation when the spec changed. Like
	// PrepareForCreate it applies Default to obj first, so that a client leaving out
	// defaulted fields does not count as a spec change.
	PrepareForUpdate(ctx context.Context, obj, old runtime.Object)
	// Default fills server-side defaults, exactly as kube-apiserver does for the fields
	// the resource has (e.g. a pod template's imagePullPolicy, restartPolicy, dnsPolicy).
	Default(obj runtime.Object)
	// Validate and ValidateUpdate return field errors; the apiserver turns them into a
	// 422 Invalid Status naming each field (apierrors.NewInvalid(GroupKind, name, errs)).
	// ValidateUpdate expects new.metadata.resourceVersion set: for an unconditional
	// update (PATCH, or PUT without one) copy it from the stored object first. Validate
	// expects metadata.name set: generate it from generateName first.
	Validate(ctx context.Context, obj runtime.Object) field.ErrorList
	ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList
	// GracefulDelete reports whether a delete of obj with these options only marks it
	// (sets deletionTimestamp and deletionGracePeriodSeconds) instead of removing it; pods
	// bound to a node are deleted gracefully unless the grace period is 0. It sets
	// options.GracePeriodSeconds to the period decided on (0 when it returns false). The
	// REST layer then stores the object with deletionTimestamp = now + period and
	// deletionGracePeriodSeconds = period and answers 200 with it; the agent stops the
	// pod's containers within the period and deletes the pod with gracePeriodSeconds=0,
	// which removes it. A repeated DELETE of a marked object may only shorten the period.
	GracefulDelete(ctx context.Context, obj runtime.Object, options *metav1.DeleteOptions) bool
	// ConvertToTable prints one object or a list (NewListFunc's type) as a Table, with the
	// columns kubectl shows for the resource; wide adds the -o wide columns' data (the
	// table always lists every column definition, wide ones with priority 1). Every row
	// carries its full object in Row.Object: replace it per the request's includeObject
	// (None, Object, or the default Metadata: a meta.k8s.io/v1 PartialObjectMetadata).
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
	// Conflict when already bound). Errors are *apierrors.StatusError values. Run it
	// inside Store.GuaranteedUpdate. After scale's Apply, run the parent Strategy's
	// PrepareForUpdate and ValidateUpdate (generation bump, full validation) and answer
	// with Get of the stored parent; binding's result is stored as is and the answer is
	// 201 with a metav1.Status{Status: "Success"}, as kube-apiserver does.
	Apply func(ctx context.Context, parent, sub runtime.Object) (runtime.Object, error)
}

// StatusStrategy is the update strategy of a status subresource.
type StatusStrategy interface {
	PrepareForUpdate(ctx context.Context, obj, old runtime.Object)
	ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList
}
