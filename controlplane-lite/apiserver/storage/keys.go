package storage

import (
	"strings"
)

// keyFunc builds etcd keys the way kube-apiserver does: <Prefix>/<namespace>/<name> for
// namespaced resources, <Prefix>/<name> for cluster-scoped ones.
type keys struct {
	prefix     string // Resource.Prefix + "/"
	namespaced bool
}

func newKeys(res Resource) keys {
	return keys{prefix: strings.TrimSuffix(res.Prefix, "/") + "/", namespaced: res.Namespaced}
}

func (k keys) object(namespace, name string) string {
	if k.namespaced {
		return k.prefix + namespace + "/" + name
	}
	return k.prefix + name
}

// list returns the key prefix of a list: everything, or one namespace.
func (k keys) list(namespace string) string {
	if k.namespaced && namespace != "" {
		return k.prefix + namespace + "/"
	}
	return k.prefix
}
