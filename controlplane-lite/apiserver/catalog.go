package apiserver

import (
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/skiff-sh/skiff/controlplane-lite/apiserver/registry"
	"github.com/skiff-sh/skiff/controlplane-lite/apiserver/storage"
)

// resource is one served resource with its store.
type resource struct {
	def   registry.Definition
	store storage.Store
	gvr   schema.GroupVersionResource
	// fieldKeys are the field selector keys the resource supports: the keys AttrFunc
	// returns for an empty object, and always metadata.name and metadata.namespace.
	fieldKeys sets.Set[string]
	// fms record managedFields; nil managers without Config.TypeConverter.
	fms fieldManagers
	// kubeletSubs are the subresources proxied to the kubelet (pods only).
	kubeletSubs []string
}

func (r *resource) gvk() schema.GroupVersionKind { return r.def.GroupVersionKind }

func (r *resource) listGVK() schema.GroupVersionKind {
	kind := r.def.ListKind
	if kind == "" {
		kind = r.def.GroupVersionKind.Kind + "List"
	}
	return r.def.GroupVersionKind.GroupVersion().WithKind(kind)
}

func (r *resource) allows(verb string) bool {
	for _, v := range r.def.Verbs {
		if v == verb {
			return true
		}
	}
	return false
}

// catalog indexes the served resources by group/version/resource and remembers the
// order of groups and versions for discovery.
type catalog struct {
	byGVR map[schema.GroupVersionResource]*resource
	// groups in the order their first Definition appears; "" (the core group) included.
	groups []string
	// versions of each group, in Definition order (the first is the preferred one).
	versions map[string][]string
	// resources of each group version, sorted by name as kube-apiserver lists them.
	resources map[schema.GroupVersion][]*resource
	// byGR finds the store of another resource, e.g. namespaces for the namespace check.
	byGR map[schema.GroupResource]*resource
}

func newCatalog(defs []registry.Definition, stores map[schema.GroupResource]storage.Store) (*catalog, error) {
	c := &catalog{
		byGVR:     map[schema.GroupVersionResource]*resource{},
		versions:  map[string][]string{},
		resources: map[schema.GroupVersion][]*resource{},
		byGR:      map[schema.GroupResource]*resource{},
	}
	for _, d := range defs {
		gv := d.GroupVersionKind.GroupVersion()
		gvr := gv.WithResource(d.GroupResource.Resource)
		if _, dup := c.byGVR[gvr]; dup {
			return nil, fmt.Errorf("resource %s is defined twice", gvr)
		}
		r := &resource{def: d, store: stores[d.GroupResource], gvr: gvr, fieldKeys: fieldKeys(d)}
		c.byGVR[gvr] = r
		if _, ok := c.byGR[d.GroupResource]; !ok {
			c.byGR[d.GroupResource] = r
		}
		if _, ok := c.versions[gv.Group]; !ok {
			c.groups = append(c.groups, gv.Group)
		}
		if !contains(c.versions[gv.Group], gv.Version) {
			c.versions[gv.Group] = append(c.versions[gv.Group], gv.Version)
		}
		c.resources[gv] = append(c.resources[gv], r)
	}
	for _, rs := range c.resources {
		sort.Slice(rs, func(i, j int) bool { return rs[i].gvr.Resource < rs[j].gvr.Resource })
	}
	return c, nil
}

func fieldKeys(d registry.Definition) sets.Set[string] {
	keys := sets.New("metadata.name", "metadata.namespace")
	if d.AttrFunc != nil {
		if _, fs, err := d.AttrFunc(d.NewFunc()); err == nil {
			for k := range fs {
				keys.Insert(k)
			}
		}
	}
	return keys
}

func (c *catalog) lookup(gv schema.GroupVersion, res string) *resource {
	return c.byGVR[gv.WithResource(res)]
}

func (c *catalog) hasGroupVersion(gv schema.GroupVersion) bool {
	return contains(c.versions[gv.Group], gv.Version)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
