// Package lab runs a multi-node skiff cluster on one machine and checks it: lab.sh starts
// one `skiff server` and a registry mirror in the root network namespace and N `skiff
// agent`s, each in a network namespace of its own with its own containerd, joined by veth
// pairs to one bridge. The test builds with the e2e tag, needs root, and drives lab.sh
// exactly as a user would; `make lab` sets SKIFF_BIN, REGISTRY_BIN and SKIFF_IMAGES.
package lab
