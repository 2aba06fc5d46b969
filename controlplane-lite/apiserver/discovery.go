package apiserver

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"sort"
	"time"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"
)

// Version reported by /version: skiff serves the API of Kubernetes 1.37.
const (
	versionMajor = "1"
	versionMinor = "37"
	gitVersion   = "v1.37.2-skiff"
)

// aggregatedMediaType is the media type of aggregated discovery (kubectl ≥ 1.30 asks
// for it on /api and /apis before falling back to the legacy documents).
const aggregatedMediaType = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

func (s *Server) serveVersion(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeStatusError(w, apierrors.NewMethodNotSupported(schema.GroupResource{}, r.Method))
		return
	}
	writeJSON(w, http.StatusOK, "application/json", version.Info{
		Major:                 versionMajor,
		Minor:                 versionMinor,
		EmulationMajor:        versionMajor,
		EmulationMinor:        versionMinor,
		MinCompatibilityMajor: versionMajor,
		MinCompatibilityMinor: "36",
		GitVersion:            gitVersion,
		GitCommit:             "skiff",
		GitTreeState:          "clean",
		BuildDate:             s.started.UTC().Format(time.RFC3339),
		GoVersion:             runtime.Version(),
		Compiler:              runtime.Compiler,
		Platform:              runtime.GOOS + "/" + runtime.GOARCH,
	})
}

// wantsAggregated reports whether the client asked for aggregated discovery v2.
func wantsAggregated(r *http.Request) bool {
	for _, opt := range parseAccept(r.Header.Get("Accept")) {
		if opt.mediaType == mediaTypeJSON && opt.params["g"] == "apidiscovery.k8s.io" &&
			opt.params["v"] == "v2" && opt.params["as"] == "APIGroupDiscoveryList" {
			return true
		}
		if opt.q > 0 && (opt.mediaType == mediaTypeJSON && len(opt.params) == 0 || opt.mediaType == "*/*") {
			// A plain type the client prefers over aggregated discovery.
			return false
		}
	}
	return false
}

// serveDiscoveryRoot answers /api (core) or /apis, legacy or aggregated.
func (s *Server) serveDiscoveryRoot(w http.ResponseWriter, r *http.Request, core bool) {
	if r.Method != http.MethodGet {
		writeStatusError(w, apierrors.NewMethodNotSupported(schema.GroupResource{}, r.Method))
		return
	}
	w.Header().Set("Vary", "Accept")
	if wantsAggregated(r) {
		writeJSON(w, http.StatusOK, aggregatedMediaType, s.aggregatedDiscovery(core))
		return
	}
	if core {
		writeJSON(w, http.StatusOK, "application/json", metav1.APIVersions{
			TypeMeta:                   metav1.TypeMeta{Kind: "APIVersions"},
			Versions:                   s.catalog.versions[""],
			ServerAddressByClientCIDRs: serverAddresses(r),
		})
		return
	}
	list := metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}, Groups: []metav1.APIGroup{}}
	for _, g := range s.catalog.groups {
		if g != "" {
			list.Groups = append(list.Groups, s.apiGroup(g))
		}
	}
	writeJSON(w, http.StatusOK, "application/json", list)
}

// serverAddresses tells clients to come back to the address they reached.
func serverAddresses(r *http.Request) []metav1.ServerAddressByClientCIDR {
	addr := r.Host
	if local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		addr = local.String()
	}
	return []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: addr}}
}

func (s *Server) apiGroup(group string) metav1.APIGroup {
	g := metav1.APIGroup{Name: group}
	for _, v := range s.catalog.versions[group] {
		g.Versions = append(g.Versions, metav1.GroupVersionForDiscovery{
			GroupVersion: schema.GroupVersion{Group: group, Version: v}.String(), Version: v,
		})
	}
	g.PreferredVersion = g.Versions[0]
	return g
}

// serveAPIGroup answers /apis/<group>.
func (s *Server) serveAPIGroup(w http.ResponseWriter, r *http.Request, group string) {
	if _, ok := s.catalog.versions[group]; !ok || group == "" {
		writeStatusError(w, notFoundPath())
		return
	}
	g := s.apiGroup(group)
	g.TypeMeta = metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}
	writeJSON(w, http.StatusOK, "application/json", g)
}

// serveResourceList answers /api/v1 and /apis/<group>/<version>.
func (s *Server) serveResourceList(w http.ResponseWriter, _ *http.Request, gv schema.GroupVersion) {
	list := metav1.APIResourceList{
		TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
		GroupVersion: gv.String(),
		APIResources: []metav1.APIResource{},
	}
	for _, res := range s.catalog.resources[gv] {
		list.APIResources = append(list.APIResources, legacyResources(res)...)
	}
	writeJSON(w, http.StatusOK, "application/json", list)
}

// legacyResources is a resource's entry and one entry per subresource.
func legacyResources(res *resource) []metav1.APIResource {
	d := res.def
	out := []metav1.APIResource{{
		Name:               res.gvr.Resource,
		SingularName:       d.Singular,
		Namespaced:         d.Namespaced,
		Kind:               d.GroupVersionKind.Kind,
		Verbs:              d.Verbs,
		ShortNames:         d.ShortNames,
		Categories:         d.Categories,
		StorageVersionHash: storageVersionHash(d.GroupVersionKind),
	}}
	for _, name := range subresourceNames(res) {
		gvk, verbs := subresourceInfo(res, name)
		entry := metav1.APIResource{
			Name:       res.gvr.Resource + "/" + name,
			Namespaced: d.Namespaced,
			Kind:       gvk.Kind,
			Verbs:      verbs,
		}
		if gvk.GroupVersion() != d.GroupVersionKind.GroupVersion() {
			entry.Group, entry.Version = gvk.Group, gvk.Version
		}
		out = append(out, entry)
	}
	return out
}

// subresourceInfo is the kind a subresource speaks (status speaks the parent's
// kind) and its verbs, for the Definition's and the kubelet's subresources.
func subresourceInfo(res *resource, name string) (schema.GroupVersionKind, []string) {
	if sub, ok := res.def.Subresources[name]; ok {
		if sub.GroupVersionKind.Kind == "" {
			return res.gvk(), sub.Verbs
		}
		return sub.GroupVersionKind, sub.Verbs
	}
	k := kubeletSubresources()[name]
	return res.gvk().GroupVersion().WithKind(k.kind), k.verbs
}

func subresourceNames(res *resource) []string {
	names := make([]string, 0, len(res.def.Subresources)+len(res.kubeletSubs))
	for name := range res.def.Subresources {
		names = append(names, name)
	}
	names = append(names, res.kubeletSubs...)
	sort.Strings(names)
	return names
}

// storageVersionHash is kube-apiserver's hash of the storage version: the first 8
// bytes of sha256("<group>/<version>/<kind>"), base64. Clients use it to notice a
// changed storage version.
func storageVersionHash(gvk schema.GroupVersionKind) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%s/%s", gvk.Group, gvk.Version, gvk.Kind)))
	return base64.StdEncoding.EncodeToString(sum[:8])
}

// aggregatedDiscovery is the APIGroupDiscoveryList of the core group (core) or of all
// named groups.
func (s *Server) aggregatedDiscovery(core bool) apidiscoveryv2.APIGroupDiscoveryList {
	list := apidiscoveryv2.APIGroupDiscoveryList{
		TypeMeta: metav1.TypeMeta{Kind: "APIGroupDiscoveryList", APIVersion: "apidiscovery.k8s.io/v2"},
		Items:    []apidiscoveryv2.APIGroupDiscovery{},
	}
	for _, group := range s.catalog.groups {
		if (group == "") != core {
			continue
		}
		item := apidiscoveryv2.APIGroupDiscovery{ObjectMeta: metav1.ObjectMeta{Name: group}}
		for _, v := range s.catalog.versions[group] {
			gv := schema.GroupVersion{Group: group, Version: v}
			vd := apidiscoveryv2.APIVersionDiscovery{Version: v, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent}
			for _, res := range s.catalog.resources[gv] {
				vd.Resources = append(vd.Resources, aggregatedResource(res))
			}
			item.Versions = append(item.Versions, vd)
		}
		list.Items = append(list.Items, item)
	}
	return list
}

func aggregatedResource(res *resource) apidiscoveryv2.APIResourceDiscovery {
	d := res.def
	scope := apidiscoveryv2.ScopeCluster
	if d.Namespaced {
		scope = apidiscoveryv2.ScopeNamespace
	}
	out := apidiscoveryv2.APIResourceDiscovery{
		Resource:         res.gvr.Resource,
		ResponseKind:     responseKind(res, res.gvk()),
		Scope:            scope,
		SingularResource: d.Singular,
		Verbs:            d.Verbs,
		ShortNames:       d.ShortNames,
		Categories:       d.Categories,
	}
	for _, name := range subresourceNames(res) {
		gvk, verbs := subresourceInfo(res, name)
		out.Subresources = append(out.Subresources, apidiscoveryv2.APISubresourceDiscovery{
			Subresource:  name,
			ResponseKind: responseKind(res, gvk),
			Verbs:        verbs,
		})
	}
	return out
}

// responseKind leaves group and version empty when they are the served version's,
// as kube-apiserver does.
func responseKind(res *resource, gvk schema.GroupVersionKind) *metav1.GroupVersionKind {
	out := &metav1.GroupVersionKind{Kind: gvk.Kind}
	if gvk.GroupVersion() != res.gvk().GroupVersion() {
		out.Group, out.Version = gvk.Group, gvk.Version
	}
	return out
}
