package pki

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStockKubectlUsesKubeconfig checks the written kubeconfig with the
// installed kubectl: it must verify the server against the embedded CA (the
// URL uses the "localhost" SAN) and present the embedded client certificate.
func TestStockKubectlUsesKubeconfig(t *testing.T) {
	const kubectl = "/usr/bin/kubectl"
	if _, err := os.Stat(kubectl); err != nil {
		t.Skipf("%s not installed", kubectl)
	}
	dir := t.TempDir()
	ca := mustCA(t, filepath.Join(dir, "pki"))
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
		io.WriteString(w, "hello "+r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.CertPool()}
	srv.StartTLS()
	defer srv.Close()

	server := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	kubeconfig := filepath.Join(dir, "admin.kubeconfig")
	if err := WriteKubeconfig(kubeconfig, server, ca, clientCert, clientKey, "admin"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "get", "--raw", "/hello")
	cmd.Env = append(os.Environ(), "HOME="+dir, "KUBECONFIG=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl: %v\n%s", err, out)
	}
	if string(out) != "hello admin" {
		t.Errorf("kubectl got %q", out)
	}
}
