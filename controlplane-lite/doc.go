// Package controlplanelite groups skiff's light control plane: the apiserver on etcd
// (apiserver, apiserver/storage, openapi), the embedded etcd (etcd), certificates and
// kubeconfigs (pki), controllers (controller) and the scheduler (scheduler).
package controlplanelite
