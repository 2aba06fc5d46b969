package apiserver

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/controlplane-lite/apiserver/registry"
)

// fakeKubelet is a kubelet API that requires the apiserver's client certificate.
type fakeKubelet struct {
	ts       *httptest.Server
	requests chan *http.Request
}

// withKubelet configures cfg's kubelet client and starts a fake kubelet that
// trusts it: logs answer two lines, exec upgrades and echoes.
func withKubelet(t *testing.T, cfg *Config) *fakeKubelet {
	t.Helper()
	fk := &fakeKubelet{requests: make(chan *http.Request, 10)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /containerLogs/{ns}/{pod}/{container}", func(w http.ResponseWriter, r *http.Request) {
		fk.requests <- r
		_, _ = io.WriteString(w, "line 1\n")
		w.(http.Flusher).Flush()
		_, _ = io.WriteString(w, "line 2\n")
	})
	mux.HandleFunc("/exec/{ns}/{pod}/{container}", func(w http.ResponseWriter, r *http.Request) {
		fk.requests <- r
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + r.Header.Get("Upgrade") + "\r\n\r\n")
		_ = rw.Flush()
		buf := make([]byte, 4)
		if _, err := io.ReadFull(rw, buf); err == nil {
			_, _ = conn.Write(buf)
		}
	})
	fk.ts = startTLSKubelet(t, cfg, mux)
	return fk
}

func (fk *fakeKubelet) port(t *testing.T) int32 { return serverPort(t, fk.ts) }

func TestKubeletProxy(t *testing.T) {
	var fk *fakeKubelet
	s := newTestServerWith(t, func(cfg *Config) {
		cfg.Definitions = registry.Definitions()
		fk = withKubelet(t, cfg)
	})
	ctx := t.Context()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}, Status: corev1.NodeStatus{
		Addresses:       []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: "node-1"}, {Type: corev1.NodeInternalIP, Address: "127.0.0.1"}},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: fk.port(t)}},
	}}
	if _, err := s.stores[schema.GroupResource{Resource: "nodes"}].Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	pods := s.stores[schema.GroupResource{Resource: "pods"}]
	for _, p := range []*corev1.Pod{
		{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"}, Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "nginx"}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "two", Namespace: "default"}, Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "a"}, {Name: "b"}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "pending", Namespace: "default"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a"}}}},
	} {
		if _, err := pods.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}

	resp := s.do(t, http.MethodGet, "/api/v1/namespaces/default/pods/web/log?follow=true&tailLines=10", "")
	expectCode(t, resp, http.StatusOK)
	if string(resp.body) != "line 1\nline 2\n" {
		t.Errorf("log body %q", resp.body)
	}
	got := <-fk.requests
	if got.URL.Path != "/containerLogs/default/web/nginx" || got.URL.Query().Get("follow") != "true" || got.URL.Query().Get("tailLines") != "10" {
		t.Errorf("kubelet got %s", got.URL)
	}
	if got.TLS == nil || len(got.TLS.PeerCertificates) == 0 || got.TLS.PeerCertificates[0].Subject.CommonName != "kube-apiserver-kubelet-client" {
		t.Error("the apiserver did not present its kubelet client certificate")
	}

	resp = s.do(t, http.MethodGet, "/api/v1/namespaces/default/pods/two/log", "")
	expectCode(t, resp, http.StatusBadRequest)
	if msg := resp.status(t).Message; msg != "a container name must be specified for pod two, choose one of: [a b]" {
		t.Errorf("message %q", msg)
	}
	// A container the pod does not have, ".." included, never reaches the kubelet.
	for _, c := range []string{"..", "..%2F..%2Fpods", "missing"} {
		resp = s.do(t, http.MethodGet, "/api/v1/namespaces/default/pods/web/log?container="+c, "")
		expectCode(t, resp, http.StatusBadRequest)
		name, _ := url.QueryUnescape(c)
		if msg := resp.status(t).Message; msg != fmt.Sprintf("container %q is not valid for pod \"web\"", name) {
			t.Errorf("container %s: message %q", c, msg)
		}
	}
	if len(fk.requests) > 0 {
		t.Fatalf("the kubelet got %s for an invalid container", (<-fk.requests).URL)
	}
	resp = s.do(t, http.MethodGet, "/api/v1/namespaces/default/pods/two/log?container=b", "")
	expectCode(t, resp, http.StatusOK)
	if got := <-fk.requests; got.URL.Path != "/containerLogs/default/two/b" {
		t.Errorf("kubelet got %s", got.URL)
	}
	resp = s.do(t, http.MethodGet, "/api/v1/namespaces/default/pods/pending/log", "")
	expectCode(t, resp, http.StatusBadRequest)
	expectCode(t, s.do(t, http.MethodPut, "/api/v1/namespaces/default/pods/web/log", "{}"), http.StatusMethodNotAllowed)

	// exec upgrades the connection end to end.
	conn := s.dialHTTP1(t)
	_, _ = io.WriteString(conn, "POST /api/v1/namespaces/default/pods/web/exec?command=ls&stdout=true HTTP/1.1\r\nHost: skiff\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nContent-Length: 0\r\n\r\n")
	br := bufio.NewReader(conn)
	upgraded, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if upgraded.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("exec answered %s", upgraded.Status)
	}
	_, _ = io.WriteString(conn, "ping")
	echo := make([]byte, 4)
	if _, err := io.ReadFull(br, echo); err != nil || string(echo) != "ping" {
		t.Errorf("echo %q %v", echo, err)
	}
	got = <-fk.requests
	// The kubelet names the stream options input/output/error, not stdin/stdout/stderr.
	if q := got.URL.Query(); got.URL.Path != "/exec/default/web/nginx" || q.Get("command") != "ls" ||
		q.Get("output") != "true" || q.Has("stdout") {
		t.Errorf("kubelet got %s", got.URL)
	}

	// Discovery lists the proxied subresources as kube-apiserver does.
	var core metav1.APIResourceList
	s.do(t, http.MethodGet, "/api/v1", "").into(t, &core)
	var names []string
	for _, r := range core.APIResources {
		if strings.HasPrefix(r.Name, "pods/") {
			names = append(names, r.Name)
		}
	}
	if strings.Join(names, ",") != "pods/attach,pods/binding,pods/exec,pods/log,pods/portforward,pods/status" {
		t.Errorf("pods subresources %v", names)
	}
}

// dialHTTP1 opens an HTTP/1.1 TLS connection to the test server as admin.
func (s *testServer) dialHTTP1(t *testing.T) *tls.Conn {
	t.Helper()
	pair, err := tls.X509KeyPair(s.clientCert, s.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(s.ca.cert)
	conn, err := tls.Dial("tcp", s.ts.Listener.Addr().String(), &tls.Config{
		RootCAs: roots, Certificates: []tls.Certificate{pair}, NextProtos: []string{"http/1.1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// startTLSKubelet serves mux as a node's kubelet does: TLS from a kubelet CA, and only to
// the apiserver's kubelet client certificate, which it writes into cfg.
func startTLSKubelet(t *testing.T, cfg *Config, mux http.Handler) *httptest.Server {
	t.Helper()
	ca := newTestCA(t, "kubelet-ca")
	dir := t.TempDir()
	clientCert, clientKey := ca.issue(t, pkix.Name{CommonName: "kube-apiserver-kubelet-client"}, x509.ExtKeyUsageClientAuth)
	cfg.KubeletClientCertFile = writeFile(t, dir, "kubelet-client.crt", clientCert)
	cfg.KubeletClientKeyFile = writeFile(t, dir, "kubelet-client.key", clientKey)
	cfg.KubeletCAFile = writeFile(t, dir, "kubelet-ca.crt", ca.pem)
	servingCert, servingKey := ca.issue(t, pkix.Name{CommonName: "node-1"}, x509.ExtKeyUsageServerAuth, net.ParseIP("127.0.0.1"))
	pair, err := tls.X509KeyPair(servingCert, servingKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	ts := httptest.NewUnstartedServer(mux)
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return ts
}

// serverPort is the port an httptest server listens on.
func serverPort(t *testing.T, ts *httptest.Server) int32 {
	t.Helper()
	_, p, _ := net.SplitHostPort(ts.Listener.Addr().String())
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return int32(n)
}
