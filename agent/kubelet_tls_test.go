package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA issues a client certificate the way the apiserver's kubelet client would hold one.
func testCA(t *testing.T) (caFile string, client tls.Certificate) {
	t.Helper()
	caFile, certs := testCAFor(t, "kube-apiserver-kubelet-client")
	return caFile, certs[0]
}

// testCAFor makes a CA and one client certificate from it for each common name.
func testCAFor(t *testing.T, commonNames ...string) (caFile string, clients []tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	for i, cn := range commonNames {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(2 + i)), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key})
	}
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	return caFile, clients
}

func TestKubeletServerAuthenticatesClients(t *testing.T) {
	env := newTestEnv(t, nil)
	caFile, certs := testCAFor(t, "kube-apiserver-kubelet-client", "system:kube-scheduler")
	clientCert, otherUser := certs[0], certs[1]
	env.agent.cfg.ClientCAFile = caFile
	env.start()
	base := fmt.Sprintf("https://127.0.0.1:%d", env.agent.cfg.KubeletPort)
	get := func(certs []tls.Certificate, path string) int {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			// The server's certificate is self-signed, as the apiserver's kubelet client
			// sees it without --kubelet-certificate-authority.
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: certs},
		}}
		resp, err := c.Get(base + path)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	env.eventually("kubelet API up", func() bool { return get(nil, "/healthz") == http.StatusOK })
	if code := get(nil, "/containerLogs/default/web/nginx"); code != http.StatusForbidden {
		t.Errorf("anonymous logs request: %d, want 403", code)
	}
	if code := get([]tls.Certificate{clientCert}, "/containerLogs/default/web/nginx"); code != http.StatusNotFound {
		t.Errorf("authenticated logs request for an unknown pod: %d, want 404", code)
	}
	// Another identity the same CA signed is authenticated but not allowed.
	if code := get([]tls.Certificate{otherUser}, "/containerLogs/default/web/nginx"); code != http.StatusForbidden {
		t.Errorf("logs request as the scheduler: %d, want 403", code)
	}
}

// TestRunFailsWhenKubeletPortIsTaken: a node that cannot serve logs, exec and
// port-forward must not come up looking healthy.
func TestRunFailsWhenKubeletPortIsTaken(t *testing.T) {
	env := newTestEnv(t, nil)
	taken, err := net.Listen("tcp", fmt.Sprintf(":%d", env.agent.cfg.KubeletPort))
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = env.agent.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("kubelet API port %d", env.agent.cfg.KubeletPort)) {
		t.Fatalf("Run with the kubelet port taken: %v, want an error naming the port", err)
	}
}
