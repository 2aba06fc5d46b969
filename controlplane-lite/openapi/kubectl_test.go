package openapi

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"
)

const kubectlPath = "/usr/bin/kubectl"

const replicaSetYAML = `apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: my-replicaset
spec:
  replicas: 2
  selector:
    matchLabels:
      app: my-app
  template:
    metadata:
      labels:
        app: my-app
    spec:
      containers:
      - name: my-container
        image: nginx:%s
      - name: sidecar
        image: busybox
`

// fakeAPIServer is the least of an apiserver kubectl needs next to the
// OpenAPI handler under test: legacy discovery, and a store for one kind.
type fakeAPIServer struct {
	openapi  *Handler
	resource []Resource

	mu       sync.Mutex
	objects  map[string]*unstructured.Unstructured // by request path of the item
	requests []recorded
}

type recorded struct {
	method, path, query, contentType string
	body                             []byte
}

func (f *fakeAPIServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.requests = append(f.requests, recorded{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Content-Type"), body})
	f.mu.Unlock()

	switch p := r.URL.Path; {
	case strings.HasPrefix(p, "/openapi/"):
		f.openapi.ServeHTTP(w, r)
	case p == "/api":
		writeJSON(w, http.StatusOK, &metav1.APIVersions{TypeMeta: metav1.TypeMeta{Kind: "APIVersions"}, Versions: []string{"v1"},
			ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: r.Host}}})
	case p == "/apis":
		writeJSON(w, http.StatusOK, f.groupList())
	case p == "/api/v1" || strings.Count(p, "/") == 3 && strings.HasPrefix(p, "/apis/"):
		writeJSON(w, http.StatusOK, f.resourceList(strings.TrimPrefix(strings.TrimPrefix(p, "/api/"), "/apis/")))
	case strings.HasPrefix(p, "/apis/apps/v1/namespaces/default/replicasets"):
		f.serveReplicaSets(w, r, body)
	default:
		writeJSON(w, http.StatusNotFound, notFound(p))
	}
}

func notFound(what string) *metav1.Status {
	return &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure,
		Reason: metav1.StatusReasonNotFound, Code: http.StatusNotFound, Message: what + " not found"}
}

func (f *fakeAPIServer) groupList() *metav1.APIGroupList {
	list := &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}}
	seen := map[string]bool{}
	for _, res := range f.resource {
		gv := res.GroupVersion
		if gv.Group == "" || seen[gv.Group] {
			continue
		}
		seen[gv.Group] = true
		v := metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: gv.Version}
		list.Groups = append(list.Groups, metav1.APIGroup{Name: gv.Group, Versions: []metav1.GroupVersionForDiscovery{v}, PreferredVersion: v})
	}
	return list
}

func (f *fakeAPIServer) resourceList(groupVersion string) *metav1.APIResourceList {
	list := &metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: groupVersion}
	for _, res := range f.resource {
		if res.GroupVersion.String() != groupVersion {
			continue
		}
		list.APIResources = append(list.APIResources, metav1.APIResource{Name: res.Plural, Namespaced: res.Namespaced, Kind: res.Kind, Verbs: res.Verbs})
		for name, sub := range res.Subresources {
			list.APIResources = append(list.APIResources, metav1.APIResource{Name: res.Plural + "/" + name, Namespaced: res.Namespaced,
				Group: sub.GroupVersionKind.Group, Version: sub.GroupVersionKind.Version, Kind: sub.GroupVersionKind.Kind, Verbs: sub.Verbs})
		}
	}
	return list
}

// serveReplicaSets stores what kubectl creates and answers GET and PATCH
// with it; enough for create and client-side apply.
func (f *fakeAPIServer) serveReplicaSets(w http.ResponseWriter, r *http.Request, body []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.Method {
	case http.MethodPost:
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(body); err != nil {
			writeJSON(w, http.StatusBadRequest, &metav1.Status{Status: metav1.StatusFailure, Code: 400, Message: err.Error()})
			return
		}
		obj.SetNamespace("default")
		obj.SetUID("6d1f8a6e-0000-4000-8000-000000000001")
		obj.SetResourceVersion("1")
		obj.SetCreationTimestamp(metav1.Now())
		f.objects[r.URL.Path+"/"+obj.GetName()] = obj
		writeJSON(w, http.StatusCreated, obj.Object)
	case http.MethodGet:
		if obj, ok := f.objects[r.URL.Path]; ok {
			writeJSON(w, http.StatusOK, obj.Object)
			return
		}
		writeJSON(w, http.StatusNotFound, notFound(r.URL.Path))
	case http.MethodPatch:
		// The patch itself is what the test inspects; answering with the
		// stored object is enough for kubectl.
		if obj, ok := f.objects[r.URL.Path]; ok {
			writeJSON(w, http.StatusOK, obj.Object)
			return
		}
		writeJSON(w, http.StatusNotFound, notFound(r.URL.Path))
	default:
		writeJSON(w, http.StatusMethodNotAllowed, &metav1.Status{Status: metav1.StatusFailure, Code: 405})
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func (f *fakeAPIServer) take() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.requests
	f.requests = nil
	return out
}

// TestStockKubectl runs the installed kubectl against the handler: create
// must read the v3 documents and trust the server to validate fields (it
// fetches /openapi/v2 to validate on the client otherwise), explain must
// render the schemas, and apply must merge containers by name.
func TestStockKubectl(t *testing.T) {
	if _, err := os.Stat(kubectlPath); err != nil {
		t.Skipf("%s not installed", kubectlPath)
	}
	h, err := New(skiffResources())
	if err != nil {
		t.Fatal(err)
	}
	fake := &fakeAPIServer{openapi: h, resource: skiffResources(), objects: map[string]*unstructured.Unstructured{}}
	srv := httptest.NewTLSServer(fake)
	defer srv.Close()

	dir := t.TempDir()
	kubeconfig := writeTestKubeconfig(t, dir, srv)
	manifest := filepath.Join(dir, "replicaset.yaml")
	writeManifest := func(tag string) {
		if err := os.WriteFile(manifest, []byte(strings.Replace(replicaSetYAML, "%s", tag, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	kubectl := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		args = append([]string{"--kubeconfig", kubeconfig, "--cache-dir", filepath.Join(dir, "cache"), "-n", "default"}, args...)
		cmd := exec.CommandContext(ctx, kubectlPath, args...)
		cmd.Env = append(os.Environ(), "HOME="+dir, "KUBECONFIG=")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("kubectl %v: %v\nstdout: %s\nstderr: %s", args, err, stdout.String(), stderr.String())
		}
		if strings.Contains(strings.ToLower(stderr.String()), "openapi") {
			t.Errorf("kubectl %v complained about OpenAPI: %s", args, stderr.String())
		}
		return stdout.String()
	}

	writeManifest("1.27")
	kubectl("create", "-f", manifest)
	requests := fake.take()
	findRequest(t, requests, http.MethodGet, "/openapi/v3")
	if doc := findRequest(t, requests, http.MethodGet, "/openapi/v3/apis/apps/v1"); !strings.Contains(doc.query, "hash=") {
		t.Errorf("kubectl fetched apps/v1 without the index hash: %q", doc.query)
	}
	// kubectl falls back to validating on the client with the v2 document
	// when the v3 document does not declare server-side field validation.
	for _, r := range requests {
		if r.path == "/openapi/v2" {
			t.Error("kubectl create fetched /openapi/v2: it did not find server-side field validation in v3")
		}
	}
	post := findRequest(t, requests, http.MethodPost, "/apis/apps/v1/namespaces/default/replicasets")
	if !strings.Contains(post.query, "fieldValidation=Strict") || !strings.Contains(post.query, "fieldManager=kubectl-create") {
		t.Errorf("create query %q: kubectl did not detect server-side field validation", post.query)
	}

	out := kubectl("explain", "replicaset.spec")
	for _, want := range []string{"KIND:", "ReplicaSet", "FIELDS:", "replicas", "selector", "template"} {
		if !strings.Contains(out, want) {
			t.Errorf("explain output lacks %q:\n%s", want, out)
		}
	}
	out = kubectl("explain", "pods.spec.containers.image")
	if !strings.Contains(out, "image") || !strings.Contains(out, "<string>") {
		t.Errorf("explain pods.spec.containers.image:\n%s", out)
	}

	// Client-side apply over an object that has a last-applied annotation:
	// the stored one came from create, so apply it once to record it, then
	// change the image and apply again.
	kubectl("apply", "-f", manifest)
	fake.take()
	fake.mu.Lock()
	stored := fake.objects["/apis/apps/v1/namespaces/default/replicasets/my-replicaset"]
	if stored != nil {
		data, _ := os.ReadFile(manifest)
		stored.SetAnnotations(map[string]string{"kubectl.kubernetes.io/last-applied-configuration": string(yamlToJSON(t, data))})
	}
	fake.mu.Unlock()
	writeManifest("1.28")
	kubectl("apply", "-f", manifest)
	patch := findRequest(t, fake.take(), http.MethodPatch, "/apis/apps/v1/namespaces/default/replicasets/my-replicaset")
	if patch.contentType != "application/strategic-merge-patch+json" {
		t.Errorf("apply patch content type %q", patch.contentType)
	}
	if !strings.Contains(patch.query, "fieldValidation=Strict") {
		t.Errorf("apply patch query %q lacks fieldValidation=Strict", patch.query)
	}
	// Merging containers by name yields an element-order directive and only
	// the changed container; a replace strategy would resend the whole list.
	var body struct {
		Spec struct {
			Template struct {
				Spec map[string]json.RawMessage `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(patch.body, &body); err != nil {
		t.Fatalf("apply patch body %s: %v", patch.body, err)
	}
	podSpec := body.Spec.Template.Spec
	if _, ok := podSpec["$setElementOrder/containers"]; !ok || strings.Contains(string(podSpec["containers"]), "busybox") ||
		!strings.Contains(string(podSpec["containers"]), "nginx:1.28") {
		t.Errorf("apply patch did not merge containers by name: %s", patch.body)
	}
}

func findRequest(t *testing.T, requests []recorded, method, path string) recorded {
	t.Helper()
	for _, r := range requests {
		if r.method == method && r.path == path {
			return r
		}
	}
	var seen []string
	for _, r := range requests {
		seen = append(seen, r.method+" "+r.path)
	}
	t.Fatalf("no %s %s among %v", method, path, seen)
	return recorded{}
}

func yamlToJSON(t *testing.T, data []byte) []byte {
	t.Helper()
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(data, &obj.Object); err != nil {
		t.Fatal(err)
	}
	out, err := obj.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func writeTestKubeconfig(t *testing.T, dir string, srv *httptest.Server) string {
	t.Helper()
	config := clientcmdapi.NewConfig()
	config.Clusters["test"] = &clientcmdapi.Cluster{
		Server:                   srv.URL,
		CertificateAuthorityData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}),
	}
	config.AuthInfos["test"] = &clientcmdapi.AuthInfo{Token: "test"}
	config.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "test"}
	config.CurrentContext = "test"
	path := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*config, path); err != nil {
		t.Fatal(err)
	}
	return path
}
