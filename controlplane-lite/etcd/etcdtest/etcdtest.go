// Package etcdtest starts a throw-away embedded etcd for tests: its own temp dir, free
// loopback ports, and cleanup through testing.TB.Cleanup even when the test fails.
package etcdtest

import (
	"net"
	"path/filepath"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/klog/v2/ktesting"

	"github.com/skiff-sh/skiff/controlplane-lite/etcd"
)

// Start runs an etcd member in t.TempDir() on free ports and returns it with a client.
// Both are closed when the test ends.
func Start(t testing.TB) (*etcd.Server, *clientv3.Client) {
	t.Helper()
	return StartIn(t, filepath.Join(t.TempDir(), "etcd"))
}

// StartIn is Start with a given data dir (to test restarts on the same data).
func StartIn(t testing.TB, dataDir string) (*etcd.Server, *clientv3.Client) {
	t.Helper()
	// etcd's log lines go to the test's log, shown when it fails or with -v.
	_, ctx := ktesting.NewTestContext(t)
	srv, err := etcd.Start(ctx, etcd.Config{
		DataDir:    dataDir,
		ClientPort: FreePort(t),
		PeerPort:   FreePort(t),
	})
	if err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	c, err := etcd.NewClient(ctx, srv.Endpoints())
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return srv, c
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
