package pki

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// kubeconfigName names the cluster and context of every kubeconfig skiff
// writes.
const kubeconfigName = "skiff"

// WriteKubeconfig writes a kubeconfig for server (an https URL) that embeds
// the CA certificate and the client certificate and key read from certFile
// and keyFile, so the file works wherever it is copied. The cluster and the
// context are named "skiff"; the user entry is named user ("skiff" when
// empty). The file gets mode 0600 and missing parent directories are created.
func WriteKubeconfig(path, server string, ca *CA, certFile, keyFile, user string) error {
	if path == "" || server == "" || ca == nil {
		return errors.New("pki: kubeconfig needs a path, a server and a CA")
	}
	if user == "" {
		user = kubeconfigName
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return fmt.Errorf("read client certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return fmt.Errorf("read client key: %w", err)
	}
	config := clientcmdapi.NewConfig()
	config.Clusters[kubeconfigName] = &clientcmdapi.Cluster{
		Server:                   server,
		CertificateAuthorityData: ca.CertPEM(),
	}
	config.AuthInfos[user] = &clientcmdapi.AuthInfo{
		ClientCertificateData: certPEM,
		ClientKeyData:         keyPEM,
	}
	config.Contexts[kubeconfigName] = &clientcmdapi.Context{
		Cluster:  kubeconfigName,
		AuthInfo: user,
	}
	config.CurrentContext = kubeconfigName
	data, err := clientcmd.Write(*config)
	if err != nil {
		return fmt.Errorf("encode kubeconfig: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create kubeconfig directory: %w", err)
	}
	return writeFileAtomic(path, data, 0o600)
}
