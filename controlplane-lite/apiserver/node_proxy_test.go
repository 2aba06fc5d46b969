package apiserver

import (
	"io"
	"net/http"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-sh/skiff/controlplane-lite/apiserver/registry"
)

// statsKubelet is a kubelet API serving /stats/summary and /metrics to the apiserver's
// kubelet client certificate only; it records the URLs it is asked for.
func statsKubelet(t *testing.T, cfg *Config) (port int32, requests chan *http.Request) {
	t.Helper()
	requests = make(chan *http.Request, 10)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats/summary", func(w http.ResponseWriter, r *http.Request) {
		requests <- r
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"node":{"nodeName":"node-1"},"pods":[]}`)
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		requests <- r
		_, _ = io.WriteString(w, "kubelet_running_pods 3\n")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		requests <- r
		http.NotFound(w, r)
	})
	return serverPort(t, startTLSKubelet(t, cfg, mux)), requests
}

func TestNodeProxy(t *testing.T) {
	var port int32
	var requests chan *http.Request
	s := newTestServerWith(t, func(cfg *Config) {
		cfg.Definitions = registry.Definitions()
		port, requests = statsKubelet(t, cfg)
	})
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}, Status: corev1.NodeStatus{
		Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: port}},
	}}
	if _, err := s.stores[schema.GroupResource{Resource: "nodes"}].Create(t.Context(), node); err != nil {
		t.Fatal(err)
	}

	resp := s.do(t, http.MethodGet, "/api/v1/nodes/node-1/proxy/stats/summary?only_cpu_and_memory=true", "", "Authorization", "Bearer secret")
	expectCode(t, resp, http.StatusOK)
	if string(resp.body) != `{"node":{"nodeName":"node-1"},"pods":[]}` {
		t.Errorf("summary body %q", resp.body)
	}
	got := <-requests
	if got.URL.Path != "/stats/summary" || got.URL.Query().Get("only_cpu_and_memory") != "true" {
		t.Errorf("kubelet got %s", got.URL)
	}
	if got.Header.Get("Authorization") != "" {
		t.Error("the caller's credentials reached the kubelet")
	}
	if len(got.TLS.PeerCertificates) == 0 || got.TLS.PeerCertificates[0].Subject.CommonName != "kube-apiserver-kubelet-client" {
		t.Error("the apiserver did not present its kubelet client certificate")
	}

	// kubectl get --raw goes through client-go's REST client.
	cs, err := kubernetes.NewForConfig(s.restConfig())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes/node-1/proxy/metrics").DoRaw(t.Context())
	if err != nil || string(raw) != "kubelet_running_pods 3\n" {
		t.Errorf("metrics through client-go: %q, %v", raw, err)
	}
	if got := <-requests; got.URL.Path != "/metrics" {
		t.Errorf("kubelet got %s", got.URL)
	}

	// "." segments are cleaned; the bare proxy path is the kubelet's root.
	expectCode(t, s.do(t, http.MethodGet, "/api/v1/nodes/node-1/proxy/stats/./summary", ""), http.StatusOK)
	if got := <-requests; got.URL.Path != "/stats/summary" {
		t.Errorf("kubelet got %s", got.URL)
	}
	expectCode(t, s.do(t, http.MethodGet, "/api/v1/nodes/node-1/proxy", ""), http.StatusNotFound)
	if got := <-requests; got.URL.Path != "/" {
		t.Errorf("kubelet got %s for the bare proxy path", got.URL)
	}
}

func TestNodeProxyRefuses(t *testing.T) {
	var requests chan *http.Request
	s := newTestServerWith(t, func(cfg *Config) {
		cfg.Definitions = registry.Definitions()
		_, requests = statsKubelet(t, cfg)
	})
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}, Status: corev1.NodeStatus{
		Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}},
	}}
	if _, err := s.stores[schema.GroupResource{Resource: "nodes"}].Create(t.Context(), node); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{
		"/api/v1/nodes/node-1/proxy/../../../api/v1/secrets",
		"/api/v1/nodes/node-1/proxy/stats/..%2F..%2Fpods",
		"/api/v1/nodes/node-1/proxy/%2E%2E/metrics",
	} {
		resp := s.do(t, http.MethodGet, p, "")
		expectCode(t, resp, http.StatusBadRequest)
		if st := resp.status(t); st.Reason != metav1.StatusReasonBadRequest {
			t.Errorf("%s: %+v", p, st)
		}
	}
	expectCode(t, s.do(t, http.MethodPost, "/api/v1/nodes/node-1/proxy/stats/summary", "{}"), http.StatusMethodNotAllowed)
	expectCode(t, s.do(t, http.MethodGet, "/api/v1/nodes/missing/proxy/stats/summary", ""), http.StatusNotFound)
	// A group other than the core one has no node proxy.
	expectCode(t, s.do(t, http.MethodGet, "/apis/apps/v1/nodes/node-1/proxy/metrics", ""), http.StatusNotFound)
	if len(requests) > 0 {
		t.Fatalf("the kubelet got %s", (<-requests).URL)
	}

	// Without a kubelet client certificate there is no way to the kubelet.
	plain := newTestServerWith(t, func(cfg *Config) { cfg.Definitions = registry.Definitions() })
	if _, err := plain.stores[schema.GroupResource{Resource: "nodes"}].Create(t.Context(), node); err != nil {
		t.Fatal(err)
	}
	expectCode(t, plain.do(t, http.MethodGet, "/api/v1/nodes/node-1/proxy/metrics", ""), http.StatusServiceUnavailable)
}
