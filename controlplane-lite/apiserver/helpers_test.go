package apiserver

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"

	"github.com/skiff-sh/skiff/controlplane-lite/apiserver/storage"
)

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue signs a leaf certificate; it returns PEM cert and key.
func (ca *testCA) issue(t *testing.T, subject pkix.Name, usage x509.ExtKeyUsage, ips ...net.IP) ([]byte, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      subject,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// testServer is a Server behind an httptest TLS listener, with in-memory stores and
// an admin client certificate.
type testServer struct {
	*Server
	ts         *httptest.Server
	stores     map[schema.GroupResource]*memStore
	ca         *testCA
	clientCert []byte
	clientKey  []byte
	client     *http.Client
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func newTestServer(t *testing.T) *testServer {
	t.Helper()
	return newTestServerWith(t, nil)
}

// newTestServerWith lets a test change the Config (its Definitions included) before
// New; the stores follow the Definitions.
func newTestServerWith(t *testing.T, change func(*Config)) *testServer {
	t.Helper()
	dir := t.TempDir()
	ca := newTestCA(t, "skiff-test-ca")
	servingCert, servingKey := ca.issue(t, pkix.Name{CommonName: "kube-apiserver"}, x509.ExtKeyUsageServerAuth, net.ParseIP("127.0.0.1"))
	clientCert, clientKey := ca.issue(t, pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}}, x509.ExtKeyUsageClientAuth)

	cfg := Config{
		Port:         6443,
		TLSCertFile:  writeFile(t, dir, "apiserver.crt", servingCert),
		TLSKeyFile:   writeFile(t, dir, "apiserver.key", servingKey),
		ClientCAFile: writeFile(t, dir, "ca.crt", ca.pem),
		Definitions:  testDefinitions(),
		OpenAPI: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"paths":{}}`))
		}),
	}
	if change != nil {
		change(&cfg)
	}
	// In-memory stores unless the test brought its own (etcd).
	stores := map[schema.GroupResource]*memStore{}
	if cfg.Stores == nil {
		var rev atomic.Int64
		cfg.Stores = map[schema.GroupResource]storage.Store{}
		for _, d := range cfg.Definitions {
			st := newMemStore(d.Resource, &rev)
			stores[d.GroupResource] = st
			cfg.Stores[d.GroupResource] = st
		}
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := EnsureDefaultNamespaces(t.Context(), cfg.Stores[namespacesGR()]); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv.Handler())
	ts.TLS = srv.TLSConfig()
	ts.EnableHTTP2 = true
	ts.StartTLS()
	t.Cleanup(ts.Close)

	pair, err := tls.X509KeyPair(clientCert, clientKey)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: roots, Certificates: []tls.Certificate{pair},
	}}}
	t.Cleanup(client.CloseIdleConnections)
	return &testServer{Server: srv, ts: ts, stores: stores, ca: ca, clientCert: clientCert, clientKey: clientKey, client: client}
}

// restConfig is how client-go reaches the test server.
func (s *testServer) restConfig() *rest.Config {
	return &rest.Config{
		Host: s.ts.URL,
		TLSClientConfig: rest.TLSClientConfig{
			CAData: s.ca.pem, CertData: s.clientCert, KeyData: s.clientKey,
		},
	}
}

type response struct {
	code   int
	header http.Header
	body   []byte
}

func (r response) status(t *testing.T) metav1.Status {
	t.Helper()
	var st metav1.Status
	if err := json.Unmarshal(r.body, &st); err != nil || st.Kind != "Status" {
		t.Fatalf("response is not a Status (%v): %s", err, r.body)
	}
	return st
}

func (r response) into(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// do sends one request; headers are name, value pairs.
func (s *testServer) do(t *testing.T, method, path string, body string, headers ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = bytes.NewBufferString(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, s.ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{code: resp.StatusCode, header: resp.Header, body: data}
}

func expectCode(t *testing.T, r response, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("got HTTP %d, want %d: %s", r.code, code, r.body)
	}
}

const rsPath = "/apis/apps/v1/namespaces/default/replicasets"

// rsJSON is the seed's ReplicaSet as kubectl sends it, with extra spec fields.
func rsJSON(name, extraSpec string) string {
	return `{"apiVersion":"apps/v1","kind":"ReplicaSet","metadata":{"labels":{"app":"my-app"},"name":"` + name +
		`","namespace":"default"},"spec":{` + extraSpec + `"selector":{"matchLabels":{"app":"my-app"}},"template":{"metadata":{"labels":{"app":"my-app"}},"spec":{"containers":[{"image":"nginx","name":"nginx","ports":[{"containerPort":80}]}]}}}}`
}

func ptrTo[T any](v T) *T { return &v }

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func pkixName(cn string) pkix.Name { return pkix.Name{CommonName: cn} }

const x509ClientAuth = x509.ExtKeyUsageClientAuth

// requestWithCert is a request that arrived over TLS with the given client certificate.
func requestWithCert(t *testing.T, certPEM []byte) *http.Request {
	t.Helper()
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/api", nil)
	req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
	return req
}
