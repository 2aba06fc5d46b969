// Command registry serves OCI image layouts as a local registry mirror for tests and the lab.
//
//	registry --addr 127.0.0.1:5000 \
//	    --image docker.io/library/nginx:latest=/path/to/layouts/nginx \
//	    --image registry.k8s.io/e2e-test-images/busybox:1.29-2=/path/to/layouts/busybox \
//	    --hosts-dir /etc/skiff/containerd/certs.d
//
// It pushes every layout under its upstream name's path (host dropped), writes a containerd
// hosts.toml for each upstream host (and each --mirror-host) into --hosts-dir, prints
// "ready" on stdout once it serves, and exits on SIGTERM or SIGINT.
// --throttle-bytes-per-second N serves every blob download at most N bytes/s, to make
// pulls slow (pull progress, slow-pull cancellation). The work is done by
// package mirror, which Go tests use in-process.
package main
