package apiserver

import (
	"context"
	"net/http"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/controlplane-lite/apiserver/registry"
	"github.com/skiff-sh/skiff/controlplane-lite/apiserver/storage"
	"github.com/skiff-sh/skiff/controlplane-lite/etcd/etcdtest"
)

// etcdStores starts an embedded etcd and returns the registry's Definitions with
// a real Store for each.
func etcdStores(t *testing.T) ([]registry.Definition, map[schema.GroupResource]storage.Store) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts an embedded etcd")
	}
	_, client := etcdtest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	defs := registry.Definitions()
	stores := map[schema.GroupResource]storage.Store{}
	for _, d := range defs {
		st, err := storage.New(ctx, client, d.Resource)
		if err != nil {
			t.Fatalf("storage for %s: %v", d.GroupResource, err)
		}
		stores[d.GroupResource] = st
	}
	return defs, stores
}

// TestKubectlOnEtcd is TestKubectl on the real registry and etcd storage.
func TestKubectlOnEtcd(t *testing.T) {
	defs, stores := etcdStores(t)
	testKubectl(t, kubectlEnv(t, func(cfg *Config) { cfg.Definitions, cfg.Stores = defs, stores }))
}

// TestFullStackOnEtcd runs the HTTP layer on the real registry and the real etcd
// storage (an embedded etcd in a temp dir on free ports), driven by client-go.
func TestFullStackOnEtcd(t *testing.T) {
	defs, stores := etcdStores(t)
	s := newTestServerWith(t, func(cfg *Config) {
		cfg.Definitions, cfg.Stores = defs, stores
		enableOpenAPI(t, cfg)
	})

	resp := s.do(t, http.MethodPost, rsPath+"?fieldManager=kubectl-create&fieldValidation=Strict", seedRequest)
	expectCode(t, resp, http.StatusCreated)
	got, want := withoutVolatile(t, resp.body), withoutVolatile(t, []byte(seedResponse))
	if mustJSON(t, got) != mustJSON(t, want) {
		t.Errorf("201 body differs from the seed's:\n got %s\nwant %s", mustJSON(t, got), mustJSON(t, want))
	}
	runClientGo(t, s.restConfig())
}
