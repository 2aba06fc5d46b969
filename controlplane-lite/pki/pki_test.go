package pki

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

var apiserverHosts = []string{
	"127.0.0.1", "::1", "10.0.2.15", "localhost", "kubernetes", "kubernetes.default",
	"kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
}

func mustCA(t *testing.T, dir string) *CA {
	t.Helper()
	ca, err := EnsureCA(dir)
	if err != nil {
		t.Fatalf("EnsureCA(%s): %v", dir, err)
	}
	return ca
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != want {
		t.Errorf("%s: mode %o, want %o", path, got, want)
	}
}

func TestEnsureCACreatesThenReloads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	ca := mustCA(t, dir)
	if ca.CertFile() != filepath.Join(dir, "ca.crt") {
		t.Errorf("CertFile() = %s", ca.CertFile())
	}
	assertMode(t, filepath.Join(dir, "ca.key"), 0o600)
	cert, _, err := readCert(ca.CertFile())
	if err != nil {
		t.Fatal(err)
	}
	if !cert.IsCA {
		t.Error("CA certificate is not marked as a CA")
	}
	if life := cert.NotAfter.Sub(time.Now()); life < 9*365*24*time.Hour {
		t.Errorf("CA valid for only %s", life)
	}

	before := mustRead(t, ca.CertFile())
	again := mustCA(t, dir)
	if !bytes.Equal(before, mustRead(t, again.CertFile())) || !bytes.Equal(before, again.CertPEM()) {
		t.Error("second EnsureCA replaced the CA instead of loading it")
	}
}

func TestEnsureCARefusesHalfACA(t *testing.T) {
	dir := t.TempDir()
	mustCA(t, dir)
	if err := os.Remove(filepath.Join(dir, "ca.key")); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureCA(dir); err == nil {
		t.Fatal("EnsureCA with ca.crt but no ca.key succeeded")
	}
}

func TestServingCertSANsAndReuse(t *testing.T) {
	ca := mustCA(t, t.TempDir())
	certFile, keyFile, err := ca.EnsureServingCert("apiserver", apiserverHosts)
	if err != nil {
		t.Fatal(err)
	}
	assertMode(t, keyFile, 0o600)
	cert, _, err := readCert(certFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range apiserverHosts {
		if err := cert.VerifyHostname(host); err != nil {
			t.Errorf("certificate does not cover %s: %v", host, err)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.CertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("serving certificate does not verify against the CA: %v", err)
	}

	first := mustRead(t, certFile)
	// A subset of the hosts is covered: the pair is reused.
	if _, _, err := ca.EnsureServingCert("apiserver", apiserverHosts[:3]); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, mustRead(t, certFile)) {
		t.Error("certificate reissued although it covered every requested host")
	}
	// A new host is missing: the pair is reissued with it.
	withNew := append(slices.Clone(apiserverHosts), "192.0.2.7", "node-1.example")
	if _, _, err := ca.EnsureServingCert("apiserver", withNew); err != nil {
		t.Fatal(err)
	}
	cert, _, err = readCert(certFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range withNew {
		if err := cert.VerifyHostname(host); err != nil {
			t.Errorf("reissued certificate does not cover %s: %v", host, err)
		}
	}
}

func TestLeafReissuedWhenExpiringOrForeign(t *testing.T) {
	ca := mustCA(t, t.TempDir())
	certFile, keyFile, err := ca.EnsureServingCert("apiserver", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	want := leafRequest{name: "apiserver", ips: []net.IP{net.ParseIP("127.0.0.1")}, usage: x509.ExtKeyUsageServerAuth}
	if !ca.leafIsCurrent(certFile, keyFile, want, time.Now()) {
		t.Fatal("fresh certificate not considered current")
	}
	if ca.leafIsCurrent(certFile, keyFile, want, time.Now().Add(leafValidity-renewBefore+time.Hour)) {
		t.Error("certificate expiring within 30 days considered current")
	}
	other := mustCA(t, t.TempDir())
	if other.leafIsCurrent(certFile, keyFile, want, time.Now()) {
		t.Error("certificate signed by another CA considered current")
	}
	// The other CA issues its own pair under the same name when asked.
	otherCert, _, err := other.EnsureServingCert("apiserver", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(mustRead(t, otherCert), mustRead(t, certFile)) {
		t.Error("two CAs produced the same certificate")
	}
}

func TestClientCertSubject(t *testing.T) {
	ca := mustCA(t, t.TempDir())
	certFile, _, err := ca.EnsureClientCert("admin", "admin", []string{"system:masters"})
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := readCert(certFile)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "admin" || !slices.Equal(cert.Subject.Organization, []string{"system:masters"}) {
		t.Errorf("subject = %v", cert.Subject)
	}
	first := mustRead(t, certFile)
	if _, _, err := ca.EnsureClientCert("admin", "admin", []string{"system:masters"}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, mustRead(t, certFile)) {
		t.Error("identical client certificate request reissued the certificate")
	}
	if _, _, err := ca.EnsureClientCert("admin", "admin", nil); err != nil {
		t.Fatal(err)
	}
	cert, _, err = readCert(certFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(cert.Subject.Organization) != 0 {
		t.Errorf("groups not dropped on reissue: %v", cert.Subject.Organization)
	}
}

func TestInvalidNames(t *testing.T) {
	ca := mustCA(t, t.TempDir())
	for _, name := range []string{"", "ca", "../x", "a/b", ".."} {
		if _, _, err := ca.EnsureClientCert(name, "u", nil); err == nil {
			t.Errorf("EnsureClientCert(%q) succeeded", name)
		}
	}
}

// TestMutualTLSWithKubeconfig serves HTTPS with the generated serving pair,
// requires client certificates from the CA, and connects through a
// kubeconfig loaded by client-go's clientcmd.
func TestMutualTLSWithKubeconfig(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, dir)
	servingCert, servingKey, err := ca.EnsureServingCert("apiserver", apiserverHosts)
	if err != nil {
		t.Fatal(err)
	}
	clientCert, clientKey, err := ca.EnsureClientCert("admin", "admin", []string{"system:masters"})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(servingCert, servingKey)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "no client certificate", http.StatusUnauthorized)
			return
		}
		subject := r.TLS.PeerCertificates[0].Subject
		io.WriteString(w, subject.CommonName+"/"+subject.Organization[0])
	}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.CertPool(),
	}
	srv.StartTLS()
	defer srv.Close()

	kubeconfig := filepath.Join(dir, "nested", "dir", "admin.kubeconfig")
	if err := WriteKubeconfig(kubeconfig, srv.URL, ca, clientCert, clientKey, "admin"); err != nil {
		t.Fatal(err)
	}
	assertMode(t, kubeconfig, 0o600)

	raw, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatalf("clientcmd cannot load the kubeconfig: %v", err)
	}
	if raw.CurrentContext != "skiff" || raw.Contexts["skiff"].Cluster != "skiff" || raw.Contexts["skiff"].AuthInfo != "admin" {
		t.Errorf("unexpected names in kubeconfig: %+v", raw.Contexts)
	}
	if len(raw.AuthInfos["admin"].ClientKeyData) == 0 || len(raw.Clusters["skiff"].CertificateAuthorityData) == 0 {
		t.Error("kubeconfig does not embed the credentials")
	}
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	transport, err := rest.TransportFor(config)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: transport, Timeout: 10 * time.Second}).Get(srv.URL)
	if err != nil {
		t.Fatalf("mutual TLS request failed: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != "admin/system:masters" {
		t.Errorf("got %d %q", resp.StatusCode, body)
	}

	// Without a client certificate the handshake must fail.
	bare := &tls.Config{RootCAs: ca.CertPool()}
	_, err = (&http.Client{Transport: &http.Transport{TLSClientConfig: bare}, Timeout: 10 * time.Second}).Get(srv.URL)
	if err == nil {
		t.Error("request without client certificate succeeded")
	}
}

func TestServingCertNeedsAHost(t *testing.T) {
	ca := mustCA(t, t.TempDir())
	for _, hosts := range [][]string{nil, {""}} {
		if _, _, err := ca.EnsureServingCert("apiserver", hosts); err == nil {
			t.Errorf("EnsureServingCert(%q) succeeded", hosts)
		}
	}
}
