package openapi

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/kube-openapi/pkg/builder"
	"k8s.io/kube-openapi/pkg/builder3"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/spec3"
	kubeopenapiutil "k8s.io/kube-openapi/pkg/util"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/skiff-sh/skiff/controlplane-lite/openapi/generated"
)

// newScheme registers the API groups whose schemas are generated into the
// generated package: every served kind and subresource kind must be one of
// them. The scheme maps kinds to Go types and, in reverse, tells which kinds
// a schema stands for (the x-kubernetes-group-version-kind extension).
func newScheme() (*runtime.Scheme, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, autoscalingv1.AddToScheme,
		coordinationv1.AddToScheme, eventsv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			return nil, fmt.Errorf("build scheme: %w", err)
		}
	}
	return scheme, nil
}

// definitionNamer names schemas and marks the ones that are API kinds with
// their group, version and kind, as kube-apiserver's namer does; clients
// (kubectl explain, apply, client-side validation) find a kind's schema
// through that extension.
type definitionNamer struct {
	kinds map[string][]any
}

func newDefinitionNamer(scheme *runtime.Scheme) *definitionNamer {
	type gvk struct{ group, version, kind string }
	byName := map[string][]gvk{}
	for k, t := range scheme.AllKnownTypes() {
		if k.Version == runtime.APIVersionInternal {
			continue
		}
		name := kubeopenapiutil.GetCanonicalTypeName(reflect.New(t).Interface())
		entry := gvk{k.Group, k.Version, k.Kind}
		if !slices.Contains(byName[name], entry) {
			byName[name] = append(byName[name], entry)
		}
	}
	n := &definitionNamer{kinds: make(map[string][]any, len(byName))}
	for name, list := range byName {
		slices.SortFunc(list, func(a, b gvk) int {
			return strings.Compare(a.group+"/"+a.version+"/"+a.kind, b.group+"/"+b.version+"/"+b.kind)
		})
		exts := make([]any, 0, len(list))
		for _, e := range list {
			exts = append(exts, map[string]any{"group": e.group, "version": e.version, "kind": e.kind})
		}
		n.kinds[name] = exts
	}
	return n
}

// name returns the schema name and extensions for a definition. Generated
// definitions are keyed by their model names ("io.k8s.api.apps.v1.ReplicaSet");
// a Go import path name is turned into the same reverse-domain form.
func (n *definitionNamer) name(name string) (string, spec.Extensions) {
	friendly := name
	if strings.Contains(name, "/") {
		friendly = kubeopenapiutil.ToRESTFriendlyName(name)
	}
	if kinds, ok := n.kinds[name]; ok {
		return friendly, spec.Extensions{extGVK: kinds}
	}
	return friendly, nil
}

// documents holds the routes grouped by where they are published.
type documents struct {
	// v3 maps an index key ("api/v1", "apis/apps/v1", "apis/apps", "api",
	// "apis", "version") to the routes of that document.
	v3 map[string]*routeContainer
}

func buildRoutes(resources []Resource, scheme *runtime.Scheme) (*documents, error) {
	objects := func(gvk schema.GroupVersionKind) (runtime.Object, error) {
		if gvk.Kind == "" {
			return nil, errors.New("empty kind")
		}
		obj, err := scheme.New(gvk)
		if err != nil {
			return nil, fmt.Errorf("no schema for %s: %w", gvk, err)
		}
		return obj, nil
	}
	docs := &documents{v3: map[string]*routeContainer{}}
	groups := map[string]bool{} // named groups, each gets a group document
	seen := map[string]bool{}
	for _, res := range resources {
		if err := validateResource(res); err != nil {
			return nil, err
		}
		key := strings.TrimPrefix(gvPath(res.GroupVersion), "/")
		if seen[key+"/"+res.Plural] {
			return nil, fmt.Errorf("resource %s/%s listed twice", key, res.Plural)
		}
		seen[key+"/"+res.Plural] = true
		container, ok := docs.v3[key]
		if !ok {
			container = &routeContainer{root: gvPath(res.GroupVersion), routes: []common.Route{apiResourcesRoute(res.GroupVersion)}}
			docs.v3[key] = container
			if g := res.GroupVersion.Group; g != "" {
				groups[g] = true
			}
		}
		routes, err := newResourceRoutes(res, objects).build()
		if err != nil {
			return nil, err
		}
		container.routes = append(container.routes, routes...)
	}
	docs.addDiscoveryRoutes(slices.Sorted(maps.Keys(groups)))
	return docs, nil
}

func validateResource(res Resource) error {
	switch {
	case res.GroupVersion.Version == "":
		return fmt.Errorf("resource %q: empty version", res.Plural)
	case res.Plural == "" || strings.ContainsAny(res.Plural, "/{}"):
		return fmt.Errorf("resource of kind %q: invalid plural %q", res.Kind, res.Plural)
	case res.Kind == "" || res.ListKind == "":
		return fmt.Errorf("resource %q: kind and list kind are required", res.Plural)
	}
	for name := range res.Subresources {
		if name == "" || strings.ContainsAny(name, "/{}") {
			return fmt.Errorf("resource %q: invalid subresource %q", res.Plural, name)
		}
	}
	return nil
}

// apiResourcesRoute is GET /apis/<group>/<version>/, the legacy discovery of
// a group version.
func apiResourcesRoute(gv schema.GroupVersion) common.Route {
	return &route{method: http.MethodGet, path: gvPath(gv) + "/",
		operationID: "get" + operationGroupVersion(gv) + "APIResources", description: "get available resources",
		consumes: []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"},
		produces: mediaObject(), responses: responses(&metav1.APIResourceList{}, http.StatusOK)}
}

// addDiscoveryRoutes adds the documents for the discovery endpoints kube-
// apiserver describes next to the group versions: /api/, /apis/, each
// /apis/<group>/ and /version/.
func (d *documents) addDiscoveryRoutes(groups []string) {
	get := func(path, op, desc string, model any) *routeContainer {
		return &routeContainer{root: strings.TrimSuffix(path, "/"), routes: []common.Route{&route{
			method: http.MethodGet, path: path, operationID: op, description: desc,
			consumes: []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"},
			produces: mediaObject(), responses: responses(model, http.StatusOK)}}}
	}
	if _, ok := d.v3["api/v1"]; ok {
		d.v3["api"] = get("/api/", "getCoreAPIVersions", "get available API versions", &metav1.APIVersions{})
	}
	d.v3["apis"] = get("/apis/", "getAPIVersions", "get available API versions", &metav1.APIGroupList{})
	for _, g := range groups {
		d.v3["apis/"+g] = get("/apis/"+g+"/", "get"+toOperationID(groupName(g), true)+"APIGroup",
			"get information of a group", &metav1.APIGroup{})
	}
	d.v3["version"] = get("/version/", "getCodeVersion", "get the version information for this server", &version.Info{})
}

// bearerSecurity is the security scheme kube-apiserver declares.
const bearerSecurity = "BearerToken"

func v2Config(namer *definitionNamer) *common.Config {
	return &common.Config{
		Info: &spec.Info{InfoProps: spec.InfoProps{Title: "Kubernetes", Version: kubernetesVersion()}},
		CommonResponses: map[int]spec.Response{
			http.StatusUnauthorized: {ResponseProps: spec.ResponseProps{Description: "Unauthorized"}},
		},
		GetDefinitions:                 generated.GetOpenAPIDefinitions,
		GetOperationIDAndTagsFromRoute: operationIDAndTags,
		GetDefinitionName:              namer.name,
		SecurityDefinitions: &spec.SecurityDefinitions{bearerSecurity: &spec.SecurityScheme{SecuritySchemeProps: spec.SecuritySchemeProps{
			Type: "apiKey", Name: "authorization", In: "header", Description: "Bearer Token authentication",
		}}},
		DefaultSecurity: []map[string][]string{{bearerSecurity: {}}},
	}
}

func v3Config(namer *definitionNamer) *common.OpenAPIV3Config {
	return &common.OpenAPIV3Config{
		Info: &spec.Info{InfoProps: spec.InfoProps{Title: "Kubernetes", Version: kubernetesVersion()}},
		CommonResponses: map[int]*spec3.Response{
			http.StatusUnauthorized: {ResponseProps: spec3.ResponseProps{Description: "Unauthorized"}},
		},
		GetDefinitions:                 generated.GetOpenAPIDefinitions,
		GetOperationIDAndTagsFromRoute: operationIDAndTags,
		GetDefinitionName:              namer.name,
		SecuritySchemes: spec3.SecuritySchemes{bearerSecurity: &spec3.SecurityScheme{SecuritySchemeProps: spec3.SecuritySchemeProps{
			Type: "apiKey", Name: "authorization", In: "header", Description: "Bearer Token authentication",
		}}},
		DefaultSecurity: []map[string][]string{{bearerSecurity: {}}},
	}
}

// operationIDAndTags tags each operation with its group version ("apps_v1",
// "core_v1"), or with the first path segment for discovery endpoints.
func operationIDAndTags(r common.Route) (string, []string, error) {
	parts := strings.Split(strings.Trim(r.Path(), "/"), "/")
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		return r.OperationName(), []string{operationTag(schema.GroupVersion{Version: parts[1]})}, nil
	case len(parts) >= 3 && parts[0] == "apis":
		return r.OperationName(), []string{operationTag(schema.GroupVersion{Group: parts[1], Version: parts[2]})}, nil
	case len(parts) == 2 && parts[0] == "apis":
		return r.OperationName(), []string{toOperationID(groupName(parts[1]), false)}, nil
	}
	return r.OperationName(), []string{parts[0]}, nil
}

// buildV2 builds the single OpenAPI v2 document of every route.
func buildV2(docs *documents, namer *definitionNamer) (*spec.Swagger, error) {
	containers := make([]common.RouteContainer, 0, len(docs.v3))
	for _, key := range slices.Sorted(maps.Keys(docs.v3)) {
		containers = append(containers, docs.v3[key])
	}
	swagger, err := builder.BuildOpenAPISpecFromRoutes(containers, v2Config(namer))
	if err != nil {
		return nil, fmt.Errorf("build OpenAPI v2: %w", err)
	}
	return swagger, nil
}

// buildV3 builds one OpenAPI v3 document per index key.
func buildV3(docs *documents, namer *definitionNamer) (map[string]*spec3.OpenAPI, error) {
	out := make(map[string]*spec3.OpenAPI, len(docs.v3))
	for key, container := range docs.v3 {
		doc, err := builder3.BuildOpenAPISpecFromRoutes([]common.RouteContainer{container}, v3Config(namer))
		if err != nil {
			return nil, fmt.Errorf("build OpenAPI v3 %s: %w", key, err)
		}
		out[key] = doc
	}
	return out, nil
}

// kubernetesVersion is the Kubernetes release whose API types are compiled
// in, from the k8s.io/api module version (v0.37.2 → v1.37.2).
func kubernetesVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unversioned"
	}
	for _, dep := range info.Deps {
		if dep.Path == "k8s.io/api" {
			if rest, ok := strings.CutPrefix(dep.Version, "v0."); ok {
				return "v1." + rest
			}
			return dep.Version
		}
	}
	return "unversioned"
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
