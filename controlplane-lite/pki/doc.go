// Package pki creates skiff's cluster certificates and kubeconfigs on first
// start and reuses them afterwards.
//
// Everything lives as PEM files in one directory:
//
//	ca.crt, ca.key           the cluster CA (ECDSA P-256, valid 10 years)
//	<name>.crt, <name>.key   leaf certificates signed by the CA (1 year)
//
// EnsureCA loads the CA or creates it. EnsureServingCert and EnsureClientCert
// return the paths of a leaf certificate and key, reusing the files on disk
// while they are signed by this CA, match the key, carry everything that was
// asked for (every requested SAN; the same common name and organizations) and
// stay valid for more than 30 days; otherwise they issue a new pair. Private
// keys are written with mode 0600, every file atomically (temp file + rename),
// so a crash never leaves a half-written key behind.
//
// WriteKubeconfig writes a self-contained kubeconfig (CA, client certificate
// and key embedded) for the stock kubectl and for client-go components.
package pki
