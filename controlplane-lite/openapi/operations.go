package openapi

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"unicode"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/common"
)

// Extension names kube-apiserver puts on operations.
const (
	extAction = "x-kubernetes-action"
	extGVK    = "x-kubernetes-group-version-kind"
)

// The media types kube-apiserver declares. Functions, not variables, so no
// caller can change a slice another route shares.
func mediaObject() []string {
	return []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"}
}

func mediaList() []string {
	return append(mediaObject(), "application/json;stream=watch", "application/vnd.kubernetes.protobuf;stream=watch")
}

func mediaPatch() []string {
	return []string{"application/json-patch+json", "application/merge-patch+json",
		"application/strategic-merge-patch+json", "application/apply-patch+yaml"}
}

func mediaAny() []string { return []string{"*/*"} }

// resourceRoutes builds the routes of one resource and its subresources,
// following the path layout and operation names of kube-apiserver.
type resourceRoutes struct {
	res     Resource
	objects objectFactory
	// gvID is the group version as it appears in operation IDs: "CoreV1",
	// "AppsV1", "CoordinationV1".
	gvID string
	// scope is "Namespaced" for namespaced resources, "" otherwise.
	scope string
	// prefix is "/api/v1" or "/apis/<group>/<version>".
	prefix string
	routes []common.Route
}

// objectFactory returns a Go value of a kind, so kube-openapi can derive
// the schema name from its type.
type objectFactory func(schema.GroupVersionKind) (runtime.Object, error)

func newResourceRoutes(res Resource, objects objectFactory) *resourceRoutes {
	r := &resourceRoutes{res: res, objects: objects, gvID: operationGroupVersion(res.GroupVersion), prefix: gvPath(res.GroupVersion)}
	if res.Namespaced {
		r.scope = "Namespaced"
	}
	return r
}

func (r *resourceRoutes) build() ([]common.Route, error) {
	kind, err := r.objects(r.res.GroupVersion.WithKind(r.res.Kind))
	if err != nil {
		return nil, fmt.Errorf("kind %s: %w", r.res.Kind, err)
	}
	list, err := r.objects(r.res.GroupVersion.WithKind(r.res.ListKind))
	if err != nil {
		return nil, fmt.Errorf("list kind %s: %w", r.res.ListKind, err)
	}
	gvk := r.res.GroupVersion.WithKind(r.res.Kind)
	for _, verb := range r.res.Verbs {
		if err := r.addVerb(verb, gvk, kind, list); err != nil {
			return nil, err
		}
	}
	for _, name := range sortedKeys(r.res.Subresources) {
		if err := r.addSubresource(name, r.res.Subresources[name]); err != nil {
			return nil, err
		}
	}
	return r.routes, nil
}

func (r *resourceRoutes) collectionPath() string {
	if r.res.Namespaced {
		return r.prefix + "/namespaces/{namespace}/" + r.res.Plural
	}
	return r.prefix + "/" + r.res.Plural
}

func (r *resourceRoutes) itemPath() string { return r.collectionPath() + "/{name}" }

// scoped prepends the namespace path parameter for namespaced resources.
func (r *resourceRoutes) scoped(params ...common.Parameter) []common.Parameter {
	out := []common.Parameter{paramPretty}
	if r.res.Namespaced {
		out = append(out, paramNamespace)
	}
	return append(out, params...)
}

func (r *resourceRoutes) add(rt *route, action string, gvk schema.GroupVersionKind) {
	rt.extensions = map[string]any{
		extAction: action,
		extGVK:    metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
	}
	r.routes = append(r.routes, rt)
}

// opID forms an operation ID the way kube-apiserver does: the verb, the
// group version, then the rest ("createAppsV1NamespacedReplicaSet").
func (r *resourceRoutes) opID(verb, rest string) string { return verb + r.gvID + rest }

func (r *resourceRoutes) addVerb(verb string, gvk schema.GroupVersionKind, kind, list runtime.Object) error {
	k, plural := r.res.Kind, r.res.Plural
	item := r.scoped(nameParam(k))
	switch verb {
	case "get":
		r.add(&route{method: http.MethodGet, path: r.itemPath(), operationID: r.opID("read", r.scope+k),
			description: "read the specified " + k, params: item, consumes: mediaAny(), produces: mediaObject(),
			responses: responses(kind, http.StatusOK)}, "get", gvk)
	case "list":
		r.add(&route{method: http.MethodGet, path: r.collectionPath(), operationID: r.opID("list", r.scope+k),
			description: "list or watch objects of kind " + k, params: r.scoped(listParams()...),
			consumes: mediaAny(), produces: mediaList(), responses: responses(list, http.StatusOK)}, "list", gvk)
		if r.res.Namespaced {
			r.add(&route{method: http.MethodGet, path: r.prefix + "/" + plural, operationID: r.opID("list", k+"ForAllNamespaces"),
				description: "list or watch objects of kind " + k, params: slices.Concat([]common.Parameter{paramPretty}, listParams()),
				consumes: mediaAny(), produces: mediaList(), responses: responses(list, http.StatusOK)}, "list", gvk)
		}
	case "watch":
		r.addWatch(gvk)
	case "create":
		r.add(&route{method: http.MethodPost, path: r.collectionPath(), operationID: r.opID("create", r.scope+k),
			description: "create a " + k, params: slices.Concat(r.scoped(), writeParams(), []common.Parameter{bodyParam()}),
			consumes: mediaAny(), produces: mediaObject(), request: kind,
			responses: responses(kind, http.StatusOK, http.StatusCreated, http.StatusAccepted)}, "post", gvk)
	case "update":
		r.add(&route{method: http.MethodPut, path: r.itemPath(), operationID: r.opID("replace", r.scope+k),
			description: "replace the specified " + k, params: slices.Concat(item, writeParams(), []common.Parameter{bodyParam()}),
			consumes: mediaAny(), produces: mediaObject(), request: kind,
			responses: responses(kind, http.StatusOK, http.StatusCreated)}, "put", gvk)
	case "patch":
		r.add(&route{method: http.MethodPatch, path: r.itemPath(), operationID: r.opID("patch", r.scope+k),
			description: "partially update the specified " + k, params: slices.Concat(item, patchParams(), []common.Parameter{bodyParam()}),
			consumes: mediaPatch(), produces: mediaObject(), request: &metav1.Patch{},
			responses: responses(kind, http.StatusOK, http.StatusCreated)}, "patch", gvk)
	case "delete":
		r.add(&route{method: http.MethodDelete, path: r.itemPath(), operationID: r.opID("delete", r.scope+k),
			description: "delete a " + k, params: slices.Concat(item, deleteParams(), []common.Parameter{bodyParam()}),
			consumes: mediaAny(), produces: mediaObject(), request: &metav1.DeleteOptions{},
			responses: responses(&metav1.Status{}, http.StatusOK, http.StatusAccepted)}, "delete", gvk)
	case "deletecollection":
		r.add(&route{method: http.MethodDelete, path: r.collectionPath(), operationID: r.opID("delete", "Collection"+r.scope+k),
			description: "delete collection of " + k, params: slices.Concat(r.scoped(), deleteCollectionParams(), []common.Parameter{bodyParam()}),
			consumes: mediaAny(), produces: mediaObject(), request: &metav1.DeleteOptions{},
			responses: responses(&metav1.Status{}, http.StatusOK)}, "deletecollection", gvk)
	default:
		return fmt.Errorf("resource %s: unknown verb %q", r.res.Plural, verb)
	}
	return nil
}

// addWatch adds the /watch/ paths kube-apiserver still serves (and
// documents as deprecated) next to list?watch=true.
func (r *resourceRoutes) addWatch(gvk schema.GroupVersionKind) {
	k, plural := r.res.Kind, r.res.Plural
	watchPrefix := r.prefix + "/watch"
	collection := watchPrefix + "/" + plural
	if r.res.Namespaced {
		collection = watchPrefix + "/namespaces/{namespace}/" + plural
	}
	const deprecated = " deprecated: use the 'watch' parameter with a list operation instead"
	event := responses(&metav1.WatchEvent{}, http.StatusOK)
	r.add(&route{method: http.MethodGet, path: collection + "/{name}", operationID: r.opID("watch", r.scope+k),
		description: "watch changes to an object of kind " + k + "." + deprecated + ", filtered to a single item with the 'fieldSelector' parameter.",
		params:      slices.Concat(r.scoped(nameParam(k)), listParams()), consumes: mediaAny(), produces: mediaList(),
		responses: event}, "watch", gvk)
	r.add(&route{method: http.MethodGet, path: collection, operationID: r.opID("watch", r.scope+k+"List"),
		description: "watch individual changes to a list of " + k + "." + deprecated + ".",
		params:      r.scoped(listParams()...), consumes: mediaAny(), produces: mediaList(),
		responses: event}, "watchlist", gvk)
	if r.res.Namespaced {
		r.add(&route{method: http.MethodGet, path: watchPrefix + "/" + plural, operationID: r.opID("watch", k+"ListForAllNamespaces"),
			description: "watch individual changes to a list of " + k + "." + deprecated + ".",
			params:      slices.Concat([]common.Parameter{paramPretty}, listParams()), consumes: mediaAny(), produces: mediaList(),
			responses: event}, "watchlist", gvk)
	}
}

func (r *resourceRoutes) addSubresource(name string, sub SubresourceInfo) error {
	obj, err := r.objects(sub.GroupVersionKind)
	if err != nil {
		return fmt.Errorf("resource %s/%s: %w", r.res.Plural, name, err)
	}
	path := r.itemPath() + "/" + name
	suffix := r.scope + r.res.Kind + upperFirst(name)
	what := name + " of the specified " + r.res.Kind
	item := r.scoped(nameParam(sub.GroupVersionKind.Kind))
	for _, verb := range sub.Verbs {
		switch verb {
		case "get":
			r.add(&route{method: http.MethodGet, path: path, operationID: r.opID("read", suffix),
				description: "read " + what, params: item, consumes: mediaAny(), produces: mediaObject(),
				responses: responses(obj, http.StatusOK)}, "get", sub.GroupVersionKind)
		case "update":
			r.add(&route{method: http.MethodPut, path: path, operationID: r.opID("replace", suffix),
				description: "replace " + what, params: slices.Concat(item, writeParams(), []common.Parameter{bodyParam()}),
				consumes: mediaAny(), produces: mediaObject(), request: obj,
				responses: responses(obj, http.StatusOK, http.StatusCreated)}, "put", sub.GroupVersionKind)
		case "patch":
			r.add(&route{method: http.MethodPatch, path: path, operationID: r.opID("patch", suffix),
				description: "partially update " + what, params: slices.Concat(item, patchParams(), []common.Parameter{bodyParam()}),
				consumes: mediaPatch(), produces: mediaObject(), request: &metav1.Patch{},
				responses: responses(obj, http.StatusOK, http.StatusCreated)}, "patch", sub.GroupVersionKind)
		case "create":
			r.add(&route{method: http.MethodPost, path: path, operationID: r.opID("create", suffix),
				description: "create " + name + " of a " + r.res.Kind, params: slices.Concat(item, writeParams(), []common.Parameter{bodyParam()}),
				consumes: mediaAny(), produces: mediaObject(), request: obj,
				responses: responses(obj, http.StatusOK, http.StatusCreated, http.StatusAccepted)}, "post", sub.GroupVersionKind)
		default:
			return fmt.Errorf("resource %s/%s: unsupported verb %q", r.res.Plural, name, verb)
		}
	}
	return nil
}

func responses(model any, codes ...int) []common.StatusCodeResponse {
	out := make([]common.StatusCodeResponse, 0, len(codes))
	for _, code := range codes {
		out = append(out, response{code: code, model: model})
	}
	return out
}

// gvPath is the URL prefix of a group version.
func gvPath(gv schema.GroupVersion) string {
	if gv.Group == "" {
		return "/api/" + gv.Version
	}
	return "/apis/" + gv.Group + "/" + gv.Version
}

// operationGroupVersion renders a group version for operation IDs the way
// kube-apiserver does: the core group is "Core", ".k8s.io" is dropped, and
// the rest is camel-cased ("flowcontrol.apiserver.k8s.io" → "FlowcontrolApiserver").
func operationGroupVersion(gv schema.GroupVersion) string {
	return toOperationID(groupName(gv.Group), true) + toOperationID(gv.Version, true)
}

// operationTag is the tag of a group version's operations: "core_v1", "apps_v1".
func operationTag(gv schema.GroupVersion) string {
	return toOperationID(groupName(gv.Group), false) + "_" + toOperationID(gv.Version, false)
}

func groupName(group string) string {
	if group == "" {
		return "core"
	}
	return strings.TrimSuffix(group, ".k8s.io")
}

// toOperationID keeps letters, '_' and non-leading digits, and capitalizes
// the letter after each dropped character (and the first when asked).
func toOperationID(s string, capitalizeFirst bool) string {
	var b strings.Builder
	capitalize := capitalizeFirst
	for i, c := range s {
		if !unicode.IsLetter(c) && c != '_' && (i == 0 || !unicode.IsDigit(c)) {
			capitalize = true
			continue
		}
		if capitalize {
			c = unicode.ToUpper(c)
			capitalize = false
		}
		b.WriteRune(c)
	}
	return b.String()
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
