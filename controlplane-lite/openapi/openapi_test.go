package openapi

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/openapi3"
	"k8s.io/client-go/rest"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/util/proto"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

var appsV1 = schema.GroupVersion{Group: "apps", Version: "v1"}

func newTestServer(t *testing.T) (*Handler, *httptest.Server) {
	t.Helper()
	h, err := New(skiffResources())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return h, srv
}

func get(t *testing.T, rawURL, accept string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	// Redirects are part of what is tested: do not follow them.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestV3IndexAndCaching(t *testing.T) {
	_, srv := newTestServer(t)
	resp, body := get(t, srv.URL+"/openapi/v3", "application/json, */*")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /openapi/v3: %d", resp.StatusCode)
	}
	var index v3Index
	if err := json.Unmarshal(body, &index); err != nil {
		t.Fatalf("index is not JSON: %v", err)
	}
	for _, key := range []string{"api/v1", "apis/apps/v1", "apis/coordination.k8s.io/v1", "api", "apis", "apis/apps", "version"} {
		entry, ok := index.Paths[key]
		if !ok {
			t.Errorf("index lacks %q", key)
			continue
		}
		u, err := url.Parse(entry.ServerRelativeURL)
		if err != nil {
			t.Fatal(err)
		}
		hash := u.Query().Get("hash")
		if u.Path != "/openapi/v3/"+key || len(hash) != 128 {
			t.Errorf("%s: serverRelativeURL %q", key, entry.ServerRelativeURL)
			continue
		}
		resp, doc := get(t, srv.URL+entry.ServerRelativeURL, "application/json")
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", key, resp.StatusCode)
			continue
		}
		if got := resp.Header.Get("Etag"); got != `"`+hash+`"` {
			t.Errorf("%s: ETag %s, want the hash %s", key, got, hash)
		}
		if got := resp.Header.Get("Cache-Control"); got != "public, immutable" {
			t.Errorf("%s: Cache-Control %q", key, got)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" || !json.Valid(doc) {
			t.Errorf("%s: content type %q, valid JSON %v", key, ct, json.Valid(doc))
		}
	}

	stale, _ := get(t, srv.URL+"/openapi/v3/apis/apps/v1?hash=0123", "application/json")
	if stale.StatusCode != http.StatusMovedPermanently || stale.Header.Get("Location") != index.Paths["apis/apps/v1"].ServerRelativeURL {
		t.Errorf("stale hash: %d to %q", stale.StatusCode, stale.Header.Get("Location"))
	}
	if resp, _ := get(t, srv.URL+"/openapi/v3/apis/batch/v1", "application/json"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown group version: %d", resp.StatusCode)
	}
	if resp, _ := get(t, srv.URL+"/openapi/v3/apis/apps/v1", "text/html"); resp.StatusCode != http.StatusNotAcceptable {
		t.Errorf("unacceptable media type: %d", resp.StatusCode)
	}
	pb, data := get(t, srv.URL+"/openapi/v3/apis/apps/v1", "application/com.github.proto-openapi.spec.v3@v1.0+protobuf")
	if pb.StatusCode != http.StatusOK || pb.Header.Get("Content-Type") != "application/"+protoV3 || len(data) == 0 {
		t.Errorf("v3 protobuf: %d %q", pb.StatusCode, pb.Header.Get("Content-Type"))
	}
}

func restConfig(srv *httptest.Server) *rest.Config {
	return &rest.Config{Host: srv.URL}
}

// TestAppsV1ThroughClientGo reads the apps/v1 document the way kubectl does,
// through client-go's openapi3 root, and checks what kubectl relies on.
func TestAppsV1ThroughClientGo(t *testing.T) {
	_, srv := newTestServer(t)
	dc, err := discovery.NewDiscoveryClientForConfig(restConfig(srv))
	if err != nil {
		t.Fatal(err)
	}
	root := openapi3.NewRoot(dc.OpenAPIV3())
	gvs, err := root.GroupVersions()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []schema.GroupVersion{{Version: "v1"}, appsV1, {Group: "coordination.k8s.io", Version: "v1"}} {
		if !slices.Contains(gvs, want) {
			t.Errorf("GroupVersions() = %v, lacks %v", gvs, want)
		}
	}
	doc, err := root.GVSpec(appsV1)
	if err != nil {
		t.Fatalf("GVSpec(apps/v1): %v", err)
	}
	path := doc.Paths.Paths["/apis/apps/v1/namespaces/{namespace}/replicasets"]
	if path == nil || path.Post == nil {
		t.Fatal("no POST for namespaced replicasets")
	}
	if path.Post.OperationId != "createAppsV1NamespacedReplicaSet" {
		t.Errorf("operationId %q", path.Post.OperationId)
	}
	if !hasQueryParam(path.Post.Parameters, "fieldValidation") || !hasQueryParam(path.Post.Parameters, "fieldManager") {
		t.Error("create operation lacks fieldValidation or fieldManager")
	}
	assertGVK(t, path.Post.Extensions, appsV1.WithKind("ReplicaSet"))

	// kubectl decides that the server validates fields from the PATCH
	// operations of the kind, so every one of them must declare it.
	for name, p := range doc.Paths.Paths {
		if p.Patch != nil && !hasQueryParam(p.Patch.Parameters, "fieldValidation") {
			t.Errorf("PATCH %s lacks fieldValidation", name)
		}
	}
	scale := doc.Paths.Paths["/apis/apps/v1/namespaces/{namespace}/replicasets/{name}/scale"]
	if scale == nil || scale.Put == nil {
		t.Fatal("no PUT for replicasets/scale")
	}
	assertGVK(t, scale.Put.Extensions, schema.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"})

	rs := doc.Components.Schemas["io.k8s.api.apps.v1.ReplicaSet"]
	if rs == nil {
		t.Fatal("no io.k8s.api.apps.v1.ReplicaSet schema")
	}
	var kinds []map[string]string
	if err := rs.Extensions.GetObject(extGVK, &kinds); err != nil || len(kinds) != 1 || kinds[0]["kind"] != "ReplicaSet" || kinds[0]["group"] != "apps" {
		t.Errorf("ReplicaSet schema GVK extension = %v (%v)", kinds, err)
	}
	for _, field := range []string{"spec", "status", "metadata"} {
		if _, ok := rs.Properties[field]; !ok {
			t.Errorf("ReplicaSet schema lacks %s", field)
		}
	}
	for ref := range referencedSchemas(t, doc) {
		if _, ok := doc.Components.Schemas[ref]; !ok {
			t.Errorf("dangling reference to %s", ref)
		}
	}
}

func hasQueryParam(params []*spec3.Parameter, name string) bool {
	return slices.ContainsFunc(params, func(p *spec3.Parameter) bool { return p.Name == name && p.In == "query" })
}

func assertGVK(t *testing.T, ext spec.Extensions, want schema.GroupVersionKind) {
	t.Helper()
	var got map[string]string
	if err := ext.GetObject(extGVK, &got); err != nil {
		t.Fatalf("read %s: %v", extGVK, err)
	}
	if got["group"] != want.Group || got["version"] != want.Version || got["kind"] != want.Kind {
		t.Errorf("%s = %v, want %v", extGVK, got, want)
	}
}

// referencedSchemas collects every "#/components/schemas/..." reference
// found anywhere in the document.
func referencedSchemas(t *testing.T, doc *spec3.OpenAPI) map[string]bool {
	t.Helper()
	data, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	refs := map[string]bool{}
	const prefix = `"#/components/schemas/`
	for rest := string(data); ; {
		i := strings.Index(rest, prefix)
		if i < 0 {
			return refs
		}
		rest = rest[i+len(prefix):]
		refs[rest[:strings.IndexByte(rest, '"')]] = true
	}
}

// TestStrategicMergeWithV3Metadata merges container lists with the patch
// metadata from the served v3 schema, as kubectl apply does.
func TestStrategicMergeWithV3Metadata(t *testing.T) {
	_, srv := newTestServer(t)
	dc, err := discovery.NewDiscoveryClientForConfig(restConfig(srv))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewRoot(dc.OpenAPIV3()).GVSpec(schema.GroupVersion{Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	meta := strategicpatch.PatchMetaFromOpenAPIV3{
		SchemaList: doc.Components.Schemas,
		Schema:     doc.Components.Schemas["io.k8s.api.core.v1.Pod"],
	}
	original := `{"spec":{"containers":[{"name":"a","image":"nginx:1"},{"name":"b","image":"busybox"}]}}`
	patch := `{"spec":{"containers":[{"name":"a","image":"nginx:2"}]}}`
	merged, err := strategicpatch.StrategicMergePatchUsingLookupPatchMeta([]byte(original), []byte(patch), meta)
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := json.Unmarshal(merged, &pod); err != nil {
		t.Fatal(err)
	}
	// Merging by the "name" key keeps b and updates a; a replace would drop b.
	if len(pod.Spec.Containers) != 2 || pod.Spec.Containers[0].Image != "nginx:2" || pod.Spec.Containers[1].Name != "b" {
		t.Errorf("merged containers = %+v", pod.Spec.Containers)
	}
}

// TestV2ProtobufThroughClientGo fetches /openapi/v2 as client-go's discovery
// does (gnostic protobuf) and loads it into kube-openapi's proto models.
func TestV2ProtobufThroughClientGo(t *testing.T) {
	_, srv := newTestServer(t)
	dc, err := discovery.NewDiscoveryClientForConfig(restConfig(srv))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := dc.OpenAPISchema()
	if err != nil {
		t.Fatalf("OpenAPISchema: %v", err)
	}
	models, err := proto.NewOpenAPIData(doc)
	if err != nil {
		t.Fatalf("NewOpenAPIData: %v", err)
	}
	rs := models.LookupModel("io.k8s.api.apps.v1.ReplicaSet")
	if rs == nil {
		t.Fatal("no ReplicaSet model in v2")
	}
	gvks, ok := rs.GetExtensions()[extGVK].([]any)
	if !ok || len(gvks) != 1 {
		t.Errorf("ReplicaSet v2 GVK extension = %v", rs.GetExtensions()[extGVK])
	}
	pod := models.LookupModel("io.k8s.api.core.v1.Pod")
	if pod == nil {
		t.Fatal("no Pod model in v2")
	}
	meta := strategicpatch.NewPatchMetaFromOpenAPI(pod)
	specMeta, _, err := meta.LookupPatchMetadataForStruct("spec")
	if err != nil {
		t.Fatal(err)
	}
	_, containers, err := specMeta.LookupPatchMetadataForSlice("containers")
	if err != nil {
		t.Fatal(err)
	}
	if containers.GetPatchMergeKey() != "name" || !slices.Contains(containers.GetPatchStrategies(), "merge") {
		t.Errorf("containers patch metadata = %q %v", containers.GetPatchMergeKey(), containers.GetPatchStrategies())
	}

	resp, body := get(t, srv.URL+"/openapi/v2", "application/json")
	if resp.StatusCode != http.StatusOK || !json.Valid(body) {
		t.Errorf("v2 JSON: %d", resp.StatusCode)
	}
	var v2 spec.Swagger
	if err := json.Unmarshal(body, &v2); err != nil {
		t.Fatal(err)
	}
	post := v2.Paths.Paths["/api/v1/namespaces/{namespace}/pods/{name}/binding"].Post
	if post == nil || post.ID != "createCoreV1NamespacedPodBinding" {
		t.Fatalf("pods/binding POST = %+v", post)
	}
}

func TestNewRejectsBadResources(t *testing.T) {
	base := skiffResources()[1] // pods
	for name, mutate := range map[string]func(*Resource){
		"unknown kind":      func(r *Resource) { r.Kind = "Widget" },
		"unknown list kind": func(r *Resource) { r.ListKind = "" },
		"unknown verb":      func(r *Resource) { r.Verbs = []string{"frobnicate"} },
		"no version":        func(r *Resource) { r.GroupVersion = schema.GroupVersion{} },
		"bad plural":        func(r *Resource) { r.Plural = "a/b" },
		"unknown sub kind": func(r *Resource) {
			r.Subresources = map[string]SubresourceInfo{"x": {GroupVersionKind: schema.GroupVersionKind{Version: "v1", Kind: "Nope"}, Verbs: []string{"get"}}}
		},
		"unknown sub verb": func(r *Resource) {
			r.Subresources = map[string]SubresourceInfo{"status": {GroupVersionKind: r.GroupVersion.WithKind("Pod"), Verbs: []string{"list"}}}
		},
	} {
		t.Run(name, func(t *testing.T) {
			r := base
			mutate(&r)
			if _, err := New([]Resource{r}); err == nil {
				t.Error("New succeeded")
			}
		})
	}
	if _, err := New([]Resource{base, base}); err == nil {
		t.Error("New accepted a resource listed twice")
	}
}

func TestOperationGroupVersion(t *testing.T) {
	for gv, want := range map[schema.GroupVersion]string{
		{Version: "v1"}:                                             "CoreV1",
		{Group: "apps", Version: "v1"}:                              "AppsV1",
		{Group: "coordination.k8s.io", Version: "v1"}:               "CoordinationV1",
		{Group: "flowcontrol.apiserver.k8s.io", Version: "v1beta3"}: "FlowcontrolApiserverV1beta3",
	} {
		if got := operationGroupVersion(gv); got != want {
			t.Errorf("operationGroupVersion(%v) = %q, want %q", gv, got, want)
		}
	}
}

func TestConditionalAndHead(t *testing.T) {
	_, srv := newTestServer(t)
	for _, path := range []string{"/openapi/v2", "/openapi/v3/api/v1"} {
		resp, _ := get(t, srv.URL+path, "application/json")
		etag := resp.Header.Get("Etag")
		if etag == "" {
			t.Fatalf("%s: no ETag", path)
		}
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Header.Set("Accept", "application/json")
		req.Header.Set("If-None-Match", etag)
		cond, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		cond.Body.Close()
		if cond.StatusCode != http.StatusNotModified {
			t.Errorf("%s with If-None-Match: %d", path, cond.StatusCode)
		}
		head, err := http.Head(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		head.Body.Close()
		if head.StatusCode != http.StatusOK || head.ContentLength <= 0 {
			t.Errorf("HEAD %s: %d, length %d", path, head.StatusCode, head.ContentLength)
		}
	}
	post, err := http.Post(srv.URL+"/openapi/v2", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	post.Body.Close()
	if post.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /openapi/v2: %d", post.StatusCode)
	}
	if resp, _ := get(t, srv.URL+"/openapi/v4", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("/openapi/v4: %d", resp.StatusCode)
	}
}

// TestDocumentsAreStable checks that two builds from the same resources give
// the same hashes: clients cache v3 documents by hash across restarts.
func TestDocumentsAreStable(t *testing.T) {
	a, err := New(skiffResources())
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(skiffResources())
	if err != nil {
		t.Fatal(err)
	}
	if a.v2.hash != b.v2.hash {
		t.Error("v2 hash differs between builds")
	}
	for key, doc := range a.v3 {
		if b.v3[key].hash != doc.hash {
			t.Errorf("v3 %s hash differs between builds", key)
		}
	}
}

// TestSchemasBuildTypeConverter feeds Schemas to the type converter behind
// server-side apply and checks it understands the served kinds, list map
// keys included.
func TestSchemasBuildTypeConverter(t *testing.T) {
	h, err := New(skiffResources())
	if err != nil {
		t.Fatal(err)
	}
	converter, err := managedfields.NewTypeConverter(h.Schemas(), false)
	if err != nil {
		t.Fatalf("NewTypeConverter: %v", err)
	}
	rs := &appsv1.ReplicaSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "ReplicaSet"},
		ObjectMeta: metav1.ObjectMeta{Name: "rs", Namespace: "default"},
		Spec: appsv1.ReplicaSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "a", Image: "nginx"}, {Name: "b", Image: "busybox"}},
		}}},
	}
	typed, err := converter.ObjectToTyped(rs)
	if err != nil {
		t.Fatalf("ObjectToTyped(ReplicaSet): %v", err)
	}
	fields, err := typed.ToFieldSet()
	if err != nil {
		t.Fatal(err)
	}
	// Containers are a map keyed by name, so each has its own path element.
	if !strings.Contains(fields.String(), `.spec.template.spec.containers[name="b"].image`) {
		t.Errorf("field set does not key containers by name:\n%s", fields)
	}
	for _, obj := range []runtime.Object{
		&corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}},
		&coordinationv1.Lease{TypeMeta: metav1.TypeMeta{APIVersion: "coordination.k8s.io/v1", Kind: "Lease"}},
		&autoscalingv1.Scale{TypeMeta: metav1.TypeMeta{APIVersion: "autoscaling/v1", Kind: "Scale"}},
	} {
		if _, err := converter.ObjectToTyped(obj); err != nil {
			t.Errorf("ObjectToTyped(%s): %v", obj.GetObjectKind().GroupVersionKind(), err)
		}
	}
}
