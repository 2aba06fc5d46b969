// Package mirror runs an in-process OCI registry (go-containerregistry's pkg/registry) that
// stands in for upstream registries in tests: it is loaded from OCI image layouts under
// their upstream names, and it writes containerd hosts.toml files that send pulls of those
// upstream hosts to it.
//
//	m, err := mirror.Start(ctx, "127.0.0.1:0", map[string]string{
//		"docker.io/library/nginx:latest": "/path/to/layouts/nginx",
//	})
//	defer m.Close()
//	err = m.WriteHostsDir("/etc/containerd/certs.d") // docker.io/hosts.toml -> http://<m.Addr()>
//
// The mirror keeps the repository path and drops the host, the way containerd asks a mirror:
// docker.io/library/nginx:latest is served as <addr>/library/nginx:latest and
// registry.k8s.io/pause:3.10 as <addr>/pause:3.10. Images of different hosts that share a
// path would collide; Start refuses that.
//
// WithThrottle(n) at Start, or SetThrottle(n) later, serves blob downloads at most n
// bytes/s (throttle.go), so that tests can make a pull slow; 0 lifts the cap.
package mirror
