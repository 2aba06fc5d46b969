package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 365 * 24 * time.Hour
	// renewBefore is how long before expiry a leaf certificate is reissued,
	// so a long-running cluster never serves an expired certificate after a
	// restart.
	renewBefore = 30 * 24 * time.Hour
	// backdate covers small clock differences between the machines of a
	// cluster: a certificate is valid a little before it was issued.
	backdate = time.Hour

	caCertName = "ca.crt"
	caKeyName  = "ca.key"
)

// CA is the cluster certificate authority, loaded from or created in a
// directory that also holds the leaf certificates it issues.
type CA struct {
	dir     string
	cert    *x509.Certificate
	certPEM []byte
	key     crypto.Signer

	// mu serializes leaf issuance: two goroutines reissuing the same name
	// could otherwise leave one's key next to the other's certificate.
	mu sync.Mutex
}

// EnsureCA loads dir/ca.crt and dir/ca.key, or creates a new CA there when
// neither exists. A directory holding only one of the two is an error: a
// silently replaced CA would invalidate every certificate already handed out.
func EnsureCA(dir string) (*CA, error) {
	if dir == "" {
		return nil, errors.New("pki: empty directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create pki directory: %w", err)
	}
	certPath, keyPath := filepath.Join(dir, caCertName), filepath.Join(dir, caKeyName)
	certExists, err := fileExists(certPath)
	if err != nil {
		return nil, err
	}
	keyExists, err := fileExists(keyPath)
	if err != nil {
		return nil, err
	}
	switch {
	case certExists && keyExists:
		return loadCA(dir)
	case certExists || keyExists:
		return nil, fmt.Errorf("pki: only one of %s and %s exists; restore the other or remove both to create a new CA", certPath, keyPath)
	}
	return createCA(dir)
}

func loadCA(dir string) (*CA, error) {
	certPath := filepath.Join(dir, caCertName)
	cert, certPEM, err := readCert(certPath)
	if err != nil {
		return nil, err
	}
	key, err := readKey(filepath.Join(dir, caKeyName))
	if err != nil {
		return nil, err
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("%s is not a CA certificate", certPath)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("%s does not match %s", certPath, caKeyName)
	}
	return &CA{dir: dir, cert: cert, certPEM: certPEM, key: key}, nil
}

func createCA(dir string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	template := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: fmt.Sprintf("skiff-ca@%d", now.Unix())},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("sign CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse new CA certificate: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	// The key goes first: a crash between the two writes leaves only a key,
	// which EnsureCA reports instead of trusting a certificate without one.
	if err := writeKey(filepath.Join(dir, caKeyName), key); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(dir, caCertName), certPEM, 0o644); err != nil {
		return nil, err
	}
	return &CA{dir: dir, cert: cert, certPEM: certPEM, key: key}, nil
}

// CertFile is the path of the CA certificate (PEM), for --client-ca-file
// style options and for clients that verify the apiserver.
func (ca *CA) CertFile() string { return filepath.Join(ca.dir, caCertName) }

// CertPEM returns the PEM-encoded CA certificate.
func (ca *CA) CertPEM() []byte { return bytes.Clone(ca.certPEM) }

// CertPool returns a pool holding only this CA, to verify serving or client
// certificates it issued.
func (ca *CA) CertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return pool
}

// EnsureServingCert returns dir/<name>.crt and dir/<name>.key, a TLS server
// certificate for hosts: each host is put in the certificate as an IP address
// SAN when it parses as one and as a DNS name SAN otherwise. An existing pair
// is reused when it covers every requested host and is otherwise current.
func (ca *CA) EnsureServingCert(name string, hosts []string) (certFile, keyFile string, err error) {
	ips, dnsNames := splitHosts(hosts)
	if len(ips) == 0 && len(dnsNames) == 0 {
		return "", "", errors.New("pki: serving certificate needs at least one host")
	}
	want := leafRequest{
		name:     name,
		subject:  pkix.Name{CommonName: name},
		ips:      ips,
		dnsNames: dnsNames,
		usage:    x509.ExtKeyUsageServerAuth,
	}
	return ca.ensureLeaf(want)
}

// EnsureClientCert returns dir/<name>.crt and dir/<name>.key, a TLS client
// certificate whose subject carries the Kubernetes user (commonName) and
// groups (organizations), as the apiserver's x509 authenticator reads them.
func (ca *CA) EnsureClientCert(name, commonName string, organizations []string) (certFile, keyFile string, err error) {
	if commonName == "" {
		return "", "", errors.New("pki: client certificate needs a common name")
	}
	want := leafRequest{
		name:    name,
		subject: pkix.Name{CommonName: commonName, Organization: slices.Clone(organizations)},
		usage:   x509.ExtKeyUsageClientAuth,
	}
	return ca.ensureLeaf(want)
}

// leafRequest is what a leaf certificate must carry.
type leafRequest struct {
	name     string
	subject  pkix.Name
	ips      []net.IP
	dnsNames []string
	usage    x509.ExtKeyUsage
}

func (ca *CA) ensureLeaf(want leafRequest) (certFile, keyFile string, err error) {
	if err := validLeafName(want.name); err != nil {
		return "", "", err
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	certFile = filepath.Join(ca.dir, want.name+".crt")
	keyFile = filepath.Join(ca.dir, want.name+".key")
	if ca.leafIsCurrent(certFile, keyFile, want, time.Now()) {
		return certFile, keyFile, nil
	}
	if err := ca.issueLeaf(certFile, keyFile, want); err != nil {
		return "", "", fmt.Errorf("issue %s certificate: %w", want.name, err)
	}
	return certFile, keyFile, nil
}

// leafIsCurrent tells whether the pair on disk can be reused. Any problem
// reading it just means a new pair is issued, so errors are not reported.
func (ca *CA) leafIsCurrent(certFile, keyFile string, want leafRequest, now time.Time) bool {
	cert, _, err := readCert(certFile)
	if err != nil {
		return false
	}
	key, err := readKey(keyFile)
	if err != nil || !publicKeysEqual(cert.PublicKey, key.Public()) {
		return false
	}
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots:       ca.CertPool(),
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{want.usage},
	}); err != nil {
		return false
	}
	if now.Add(renewBefore).After(cert.NotAfter) {
		return false
	}
	return coversRequest(cert, want)
}

func coversRequest(cert *x509.Certificate, want leafRequest) bool {
	for _, ip := range want.ips {
		if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
			return false
		}
	}
	for _, name := range want.dnsNames {
		if !slices.Contains(cert.DNSNames, name) {
			return false
		}
	}
	if want.usage == x509.ExtKeyUsageClientAuth {
		// The subject is the identity for client certificates: it must be
		// exactly what was asked for, not merely include it.
		return cert.Subject.CommonName == want.subject.CommonName &&
			slices.Equal(cert.Subject.Organization, want.subject.Organization)
	}
	return true
}

func (ca *CA) issueLeaf(certFile, keyFile string, want leafRequest) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return err
	}
	now := time.Now()
	notAfter := now.Add(leafValidity)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	template := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               want.subject,
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{want.usage},
		BasicConstraintsValid: true,
		IPAddresses:           want.ips,
		DNSNames:              want.dnsNames,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, ca.cert, key.Public(), ca.key)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	if err := writeKey(keyFile, key); err != nil {
		return err
	}
	return writeFileAtomic(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// splitHosts sorts hosts into IP addresses and DNS names, dropping empty
// entries and duplicates.
func splitHosts(hosts []string) ([]net.IP, []string) {
	var ips []net.IP
	var dnsNames []string
	for _, host := range hosts {
		if host == "" {
			continue
		}
		if ip := net.ParseIP(host); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
			continue
		}
		if !slices.Contains(dnsNames, host) {
			dnsNames = append(dnsNames, host)
		}
	}
	return ips, dnsNames
}

// validLeafName keeps leaf files inside the CA directory.
func validLeafName(name string) error {
	if name == "" || name == "ca" || name != filepath.Base(name) || name == "." || name == ".." {
		return fmt.Errorf("pki: invalid certificate name %q", name)
	}
	return nil
}

func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return serial, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

func fileExists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("stat %s: %w", path, err)
}
