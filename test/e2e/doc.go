// Package e2e runs skiff for real: `skiff up` with its own containerd, CNI and embedded
// etcd, the stock kubectl, and images served from a local registry mirror. The tests build
// with the e2e tag and need root; `make e2e` sets SKIFF_BIN, SKIFF_IMAGES and CRICTL.
package e2e
