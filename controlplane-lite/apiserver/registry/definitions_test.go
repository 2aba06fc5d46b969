package registry

import (
	"reflect"
	"sort"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Expectations from kube-apiserver v1.37.2's discovery (reference/upstream-v1.37.2).
func TestDefinitions(t *testing.T) {
	want := map[string]struct {
		gvk         schema.GroupVersionKind
		prefix      string
		namespaced  bool
		singular    string
		short, cats []string
		verbs       []string
		subs        []string
	}{
		"namespaces":                 {schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}, "/registry/namespaces", false, "namespace", []string{"ns"}, nil, []string{"create", "delete", "get", "list", "patch", "update", "watch"}, []string{"status"}},
		"pods":                       {schema.GroupVersionKind{Version: "v1", Kind: "Pod"}, "/registry/pods", true, "pod", []string{"po"}, []string{"all"}, verbsAll(), []string{"binding", "status"}},
		"nodes":                      {schema.GroupVersionKind{Version: "v1", Kind: "Node"}, "/registry/minions", false, "node", []string{"no"}, nil, verbsAll(), []string{"status"}},
		"configmaps":                 {schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, "/registry/configmaps", true, "configmap", []string{"cm"}, nil, verbsAll(), nil},
		"secrets":                    {schema.GroupVersionKind{Version: "v1", Kind: "Secret"}, "/registry/secrets", true, "secret", nil, nil, verbsAll(), nil},
		"events":                     {schema.GroupVersionKind{Version: "v1", Kind: "Event"}, "/registry/events", true, "event", []string{"ev"}, nil, verbsAll(), nil},
		"replicasets.apps":           {schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "ReplicaSet"}, "/registry/replicasets", true, "replicaset", []string{"rs"}, []string{"all"}, verbsAll(), []string{"scale", "status"}},
		"leases.coordination.k8s.io": {schema.GroupVersionKind{Group: "coordination.k8s.io", Version: "v1", Kind: "Lease"}, "/registry/leases", true, "lease", nil, nil, verbsAll(), nil},
	}
	defs := Definitions()
	if len(defs) != len(want) {
		t.Fatalf("%d definitions, want %d", len(defs), len(want))
	}
	for _, d := range defs {
		w, ok := want[d.GroupResource.String()]
		if !ok {
			t.Errorf("unexpected resource %s", d.GroupResource)
			continue
		}
		var subs []string
		for name, sub := range d.Subresources {
			subs = append(subs, name)
			if sub.New == nil || sub.New().GetObjectKind() == nil || len(sub.Verbs) == 0 {
				t.Errorf("%s/%s: incomplete subresource", d.GroupResource, name)
			}
			if sub.Status == nil && sub.Apply == nil {
				t.Errorf("%s/%s: neither Status nor Apply", d.GroupResource, name)
			}
		}
		sort.Strings(subs)
		if d.GroupVersionKind != w.gvk || d.Prefix != w.prefix || d.Namespaced != w.namespaced || d.Singular != w.singular ||
			!reflect.DeepEqual(d.ShortNames, w.short) || !reflect.DeepEqual(d.Categories, w.cats) ||
			!reflect.DeepEqual(d.Verbs, w.verbs) || !reflect.DeepEqual(subs, w.subs) || d.ListKind != w.gvk.Kind+"List" {
			t.Errorf("%s = %+v (subresources %v)", d.GroupResource, d, subs)
		}
		if d.NewFunc == nil || d.NewListFunc == nil || d.AttrFunc == nil || d.Strategy == nil {
			t.Errorf("%s: missing funcs", d.GroupResource)
			continue
		}
		_, f, err := d.AttrFunc(d.NewFunc())
		if err != nil || f["metadata.name"] != "" {
			t.Errorf("%s: AttrFunc on an empty object: %v %v", d.GroupResource, f, err)
		}
		if _, err := d.Strategy.ConvertToTable(t.Context(), d.NewListFunc()); err != nil {
			t.Errorf("%s: table of an empty list: %v", d.GroupResource, err)
		}
	}
	defs[0].Verbs[0] = "changed"
	if Definitions()[0].Verbs[0] == "changed" {
		t.Errorf("definitions share slices between calls")
	}
}

// TestEventsExpire: like kube-apiserver's --event-ttl, events are stored with a lease
// so etcd drops them; nothing else expires.
func TestEventsExpire(t *testing.T) {
	for _, def := range Definitions() {
		want := time.Duration(0)
		if def.GroupResource.Resource == "events" {
			want = time.Hour
		}
		if def.TTL != want {
			t.Errorf("%s: TTL %v, want %v", def.GroupResource, def.TTL, want)
		}
	}
}
