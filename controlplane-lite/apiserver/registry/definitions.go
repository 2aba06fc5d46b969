package registry

import (
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-sh/skiff/controlplane-lite/apiserver/storage"
)

// Discovery verbs, as kube-apiserver lists them. Functions, not shared slices, so one
// caller's edit cannot leak into another Definition. For the same reason each resource's
// GroupResource and GroupVersionKind (configMapGR, replicaSetGVK, ...) is a function
// beside its strategy rather than a package variable.
func verbsAll() []string {
	return []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
}

// verbsNamespace lacks deletecollection: namespaces are deleted one by one, each
// through its finalization.
func verbsNamespace() []string {
	return []string{"create", "delete", "get", "list", "patch", "update", "watch"}
}

func verbsStatusOrScale() []string { return []string{"get", "patch", "update"} }

func verbsBinding() []string { return []string{"create"} }

func categoriesAll() []string { return []string{"all"} }

// Definitions returns every resource skiff serves, by API group (core, apps,
// coordination.k8s.io) and by name within a group, the order of kube-apiserver's
// discovery. Each call builds fresh values, so callers may keep and modify them.
func Definitions() []Definition {
	return definitions(time.Now)
}

func definitions(now clock) []Definition {
	return []Definition{
		configMapDefinition(now),
		eventDefinition(now),
		namespaceDefinition(now),
		nodeDefinition(now),
		podDefinition(now),
		secretDefinition(now),
		replicaSetDefinition(now),
		leaseDefinition(now),
	}
}

func namespaceDefinition(now clock) Definition {
	return Definition{
		Resource: storage.Resource{
			GroupResource:    namespaceGR(),
			GroupVersionKind: corev1.SchemeGroupVersion.WithKind("Namespace"),
			Prefix:           "/registry/namespaces",
			Namespaced:       false,
			NewFunc:          func() runtime.Object { return &corev1.Namespace{} },
			NewListFunc:      func() runtime.Object { return &corev1.NamespaceList{} },
			AttrFunc:         namespaceAttrs,
		},
		Singular:   "namespace",
		ShortNames: []string{"ns"},
		ListKind:   "NamespaceList",
		Verbs:      verbsNamespace(),
		Strategy:   namespaceStrategy{now: now},
		Subresources: map[string]Subresource{
			"status": {
				GroupVersionKind: corev1.SchemeGroupVersion.WithKind("Namespace"),
				Verbs:            verbsStatusOrScale(),
				New:              func() runtime.Object { return &corev1.Namespace{} },
				Status:           namespaceStatusStrategy{},
			},
		},
	}
}

func podDefinition(now clock) Definition {
	return Definition{
		Resource: storage.Resource{
			GroupResource:    podGR(),
			GroupVersionKind: corev1.SchemeGroupVersion.WithKind("Pod"),
			Prefix:           "/registry/pods",
			Namespaced:       true,
			NewFunc:          func() runtime.Object { return &corev1.Pod{} },
			NewListFunc:      func() runtime.Object { return &corev1.PodList{} },
			AttrFunc:         podAttrs,
		},
		Singular:   "pod",
		ShortNames: []string{"po"},
		Categories: categoriesAll(),
		ListKind:   "PodList",
		Verbs:      verbsAll(),
		Strategy:   podStrategy{now: now},
		Subresources: map[string]Subresource{
			"status": {
				GroupVersionKind: corev1.SchemeGroupVersion.WithKind("Pod"),
				Verbs:            verbsStatusOrScale(),
				New:              func() runtime.Object { return &corev1.Pod{} },
				Status:           podStatusStrategy{},
			},
			"binding": {
				GroupVersionKind: corev1.SchemeGroupVersion.WithKind("Binding"),
				Verbs:            verbsBinding(),
				New:              func() runtime.Object { return &corev1.Binding{} },
				Apply:            bindPod(now),
			},
		},
	}
}

func nodeDefinition(now clock) Definition {
	return Definition{
		Resource: storage.Resource{
			GroupResource:    nodeGR(),
			GroupVersionKind: corev1.SchemeGroupVersion.WithKind("Node"),
			// Nodes were called minions once; kube-apiserver still stores them so.
			Prefix:      "/registry/minions",
			Namespaced:  false,
			NewFunc:     func() runtime.Object { return &corev1.Node{} },
			NewListFunc: func() runtime.Object { return &corev1.NodeList{} },
			AttrFunc:    nodeAttrs,
		},
		Singular:   "node",
		ShortNames: []string{"no"},
		ListKind:   "NodeList",
		Verbs:      verbsAll(),
		Strategy:   nodeStrategy{now: now},
		Subresources: map[string]Subresource{
			"status": {
				GroupVersionKind: corev1.SchemeGroupVersion.WithKind("Node"),
				Verbs:            verbsStatusOrScale(),
				New:              func() runtime.Object { return &corev1.Node{} },
				Status:           nodeStatusStrategy{},
			},
		},
	}
}

func eventDefinition(now clock) Definition {
	return Definition{
		Resource: storage.Resource{
			GroupResource:    eventGR(),
			GroupVersionKind: corev1.SchemeGroupVersion.WithKind("Event"),
			Prefix:           "/registry/events",
			Namespaced:       true,
			NewFunc:          func() runtime.Object { return &corev1.Event{} },
			NewListFunc:      func() runtime.Object { return &corev1.EventList{} },
			AttrFunc:         eventAttrs,
			// kube-apiserver's --event-ttl default: events expire from etcd after an hour.
			TTL: time.Hour,
		},
		Singular:   "event",
		ShortNames: []string{"ev"},
		ListKind:   "EventList",
		Verbs:      verbsAll(),
		Strategy:   eventStrategy{now: now},
	}
}

func replicaSetDefinition(now clock) Definition {
	return Definition{
		Resource: storage.Resource{
			GroupResource:    replicaSetGR(),
			GroupVersionKind: replicaSetGVK(),
			Prefix:           "/registry/replicasets",
			Namespaced:       true,
			NewFunc:          func() runtime.Object { return &appsv1.ReplicaSet{} },
			NewListFunc:      func() runtime.Object { return &appsv1.ReplicaSetList{} },
			AttrFunc:         replicaSetAttrs,
		},
		Singular:   "replicaset",
		ShortNames: []string{"rs"},
		Categories: categoriesAll(),
		ListKind:   "ReplicaSetList",
		Verbs:      verbsAll(),
		Strategy:   replicaSetStrategy{now: now},
		Subresources: map[string]Subresource{
			"status": {
				GroupVersionKind: replicaSetGVK(),
				Verbs:            verbsStatusOrScale(),
				New:              func() runtime.Object { return &appsv1.ReplicaSet{} },
				Status:           replicaSetStatusStrategy{},
			},
			"scale": {
				GroupVersionKind: scaleGVK(),
				Verbs:            verbsStatusOrScale(),
				New:              func() runtime.Object { return newScale() },
				Get:              scaleFromReplicaSet,
				Apply:            applyScale,
			},
		},
	}
}

func leaseDefinition(now clock) Definition {
	return Definition{
		Resource: storage.Resource{
			GroupResource:    leaseGR(),
			GroupVersionKind: coordinationv1.SchemeGroupVersion.WithKind("Lease"),
			Prefix:           "/registry/leases",
			Namespaced:       true,
			NewFunc:          func() runtime.Object { return &coordinationv1.Lease{} },
			NewListFunc:      func() runtime.Object { return &coordinationv1.LeaseList{} },
			AttrFunc:         leaseAttrs,
		},
		Singular: "lease",
		ListKind: "LeaseList",
		Verbs:    verbsAll(),
		Strategy: leaseStrategy{now: now},
	}
}
