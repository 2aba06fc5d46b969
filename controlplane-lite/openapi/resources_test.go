package openapi

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// skiffResources mirrors what skiff's apiserver serves.
func skiffResources() []Resource {
	core := schema.GroupVersion{Version: "v1"}
	apps := schema.GroupVersion{Group: "apps", Version: "v1"}
	coordination := schema.GroupVersion{Group: "coordination.k8s.io", Version: "v1"}
	all := []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
	status := []string{"get", "patch", "update"}
	return []Resource{
		{GroupVersion: core, Plural: "namespaces", Kind: "Namespace", ListKind: "NamespaceList",
			Verbs: []string{"create", "delete", "get", "list", "patch", "update", "watch"}},
		{GroupVersion: core, Plural: "pods", Kind: "Pod", ListKind: "PodList", Namespaced: true, Verbs: all,
			Subresources: map[string]SubresourceInfo{
				"status":  {GroupVersionKind: core.WithKind("Pod"), Verbs: status},
				"binding": {GroupVersionKind: core.WithKind("Binding"), Verbs: []string{"create"}},
			}},
		{GroupVersion: core, Plural: "nodes", Kind: "Node", ListKind: "NodeList", Verbs: all,
			Subresources: map[string]SubresourceInfo{"status": {GroupVersionKind: core.WithKind("Node"), Verbs: status}}},
		{GroupVersion: core, Plural: "events", Kind: "Event", ListKind: "EventList", Namespaced: true, Verbs: all},
		{GroupVersion: apps, Plural: "replicasets", Kind: "ReplicaSet", ListKind: "ReplicaSetList", Namespaced: true, Verbs: all,
			Subresources: map[string]SubresourceInfo{
				"status": {GroupVersionKind: apps.WithKind("ReplicaSet"), Verbs: status},
				"scale": {GroupVersionKind: schema.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"},
					Verbs: status},
			}},
		{GroupVersion: coordination, Plural: "leases", Kind: "Lease", ListKind: "LeaseList", Namespaced: true, Verbs: all},
	}
}
