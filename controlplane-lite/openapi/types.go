package openapi

import "k8s.io/apimachinery/pkg/runtime/schema"

// Resource describes one REST resource the apiserver serves. The OpenAPI
// documents are assembled from these descriptions, so what kubectl learns
// from /openapi/v2 and /openapi/v3 always matches what the server handles.
type Resource struct {
	// GroupVersion is the API group and version, e.g. apps/v1 or the
	// legacy core group {"" "v1"}.
	GroupVersion schema.GroupVersion
	// Plural is the lower-case resource name used in the URL, e.g. "replicasets".
	Plural string
	// Kind is the object kind, e.g. "ReplicaSet".
	Kind string
	// ListKind is the list kind, e.g. "ReplicaSetList".
	ListKind string
	// Namespaced tells whether objects live in a namespace.
	Namespaced bool
	// Verbs are the Kubernetes verbs served for the resource: get, list,
	// watch, create, update, patch, delete, deletecollection.
	Verbs []string
	// Subresources maps a subresource name ("status", "scale", "binding")
	// to what it serves.
	Subresources map[string]SubresourceInfo
}

// SubresourceInfo describes one subresource of a Resource.
type SubresourceInfo struct {
	// GroupVersionKind is the kind read and written through the
	// subresource: the parent's kind for "status", autoscaling/v1 Scale for
	// "scale", core/v1 Binding for "binding".
	GroupVersionKind schema.GroupVersionKind
	// Verbs are the verbs served for the subresource, e.g. get, update, patch
	// for "status" or create for "binding".
	Verbs []string
}
