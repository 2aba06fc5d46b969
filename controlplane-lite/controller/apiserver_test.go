package controller

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2/ktesting"

	"github.com/skiff-sh/skiff/controlplane-lite/apiserver"
	"github.com/skiff-sh/skiff/controlplane-lite/apiserver/registry"
	"github.com/skiff-sh/skiff/controlplane-lite/apiserver/storage"
	"github.com/skiff-sh/skiff/controlplane-lite/etcd/etcdtest"
	"github.com/skiff-sh/skiff/controlplane-lite/pki"
)

// startAPIServer runs skiff's apiserver on an embedded etcd, both in temp dirs on free
// loopback ports and stopped when the test ends, and returns an admin client config.
func startAPIServer(t *testing.T) *rest.Config {
	t.Helper()
	if testing.Short() {
		t.Skip("starts an embedded etcd and the apiserver")
	}
	_, etcdClient := etcdtest.Start(t)
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defs := registry.Definitions()
	stores := map[schema.GroupResource]storage.Store{}
	for _, d := range defs {
		st, err := storage.New(ctx, etcdClient, d.Resource)
		if err != nil {
			cancel()
			t.Fatalf("storage for %s: %v", d.GroupResource, err)
		}
		stores[d.GroupResource] = st
	}
	if err := apiserver.EnsureDefaultNamespaces(ctx, stores[schema.GroupResource{Resource: "namespaces"}]); err != nil {
		cancel()
		t.Fatal(err)
	}
	ca, err := pki.EnsureCA(t.TempDir())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	certFile, keyFile, err := ca.EnsureServingCert("apiserver", []string{"127.0.0.1"})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	port := etcdtest.FreePort(t)
	srv, err := apiserver.New(apiserver.Config{
		BindAddress: "127.0.0.1", Port: port, TLSCertFile: certFile, TLSKeyFile: keyFile,
		ClientCAFile: ca.CertFile(), Definitions: defs, Stores: stores,
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("apiserver: %v", err)
		}
	})
	adminCert, adminKey, err := ca.EnsureClientCert("admin", "admin", []string{"system:masters"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &rest.Config{
		Host:            "https://127.0.0.1:" + strconv.Itoa(port),
		TLSClientConfig: rest.TLSClientConfig{CAFile: ca.CertFile(), CertFile: adminCert, KeyFile: adminKey},
		QPS:             100, Burst: 200,
	}
	client := kubernetes.NewForConfigOrDie(cfg)
	err = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("apiserver not ready: %v", err)
	}
	return cfg
}

// runManager runs the controllers against the apiserver at cfg until the test ends.
func runManager(t *testing.T, cfg *rest.Config) (kubernetes.Interface, metadata.Interface) {
	t.Helper()
	client := kubernetes.NewForConfigOrDie(cfg)
	meta := metadata.NewForConfigOrDie(cfg)
	m, err := New(Config{Client: client, Metadata: meta, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return client, meta
}

// eventually polls cond for up to 20s.
func eventually(t *testing.T, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 20*time.Second, true, cond)
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func gone(err error) (bool, error) {
	switch {
	case err == nil:
		return false, nil
	case apierrors.IsNotFound(err):
		return true, nil
	}
	return false, fmt.Errorf("unexpected error: %w", err)
}
