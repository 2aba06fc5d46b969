// Package registry holds what kube-apiserver keeps in pkg/registry for the resources skiff
// serves (v1 namespaces, pods, nodes, events; apps/v1 replicasets; coordination.k8s.io/v1
// leases): for each, a Definition (etcd prefix, kinds, selectable fields, discovery names
// and verbs, subresources) and a Strategy (server-side defaults, create/update
// preparation, validation with kube-apiserver's field paths and messages, graceful
// deletion, and the server-side Table kubectl prints).
//
// The package is pure: it neither talks to etcd nor serves HTTP, and it keeps no state.
// The REST layer drives a Strategy in kube-apiserver's order:
//
//	create: decode; Default; PrepareForCreate; name from generateName if empty;
//	        Validate; Store.Create (uid, creationTimestamp set)
//	update: decode; Default; inside Store.GuaranteedUpdate with the current object:
//	        copy its resourceVersion if the request had none (PATCH, unconditional PUT);
//	        PrepareForUpdate(new, current); ValidateUpdate(new, current); write
//	status: the same with Subresource.Status instead of the Strategy
//	scale, binding: inside GuaranteedUpdate, Subresource.Apply(current copy, request)
//	delete: GracefulDelete says whether to remove now or mark with a deletionTimestamp
//	        (see its comment in registry.go for what the REST layer does then)
//	get/list as Table: ConvertToTable; every row carries its object in Row.Object, which
//	        the REST layer replaces per includeObject (default: PartialObjectMetadata)
//
// PrepareForCreate and PrepareForUpdate apply Default themselves, so a caller that
// defaults after preparing gets the same result. Validation errors are field.ErrorLists
// for apierrors.NewInvalid; errors from Subresource.Apply are already
// *apierrors.StatusError values.
package registry
