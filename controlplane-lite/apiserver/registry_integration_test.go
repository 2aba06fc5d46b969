package apiserver

import (
	"encoding/json"
	"net/http"
	"reflect"
	"testing"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"

	"github.com/skiff-sh/skiff/controlplane-lite/apiserver/registry"
)

// seedRequest and seedResponse are the seed's POST body and 201 answer.
const (
	seedRequest  = `{"apiVersion":"apps/v1","kind":"ReplicaSet","metadata":{"name":"my-replicaset","namespace":"default"},"spec":{"replicas":2,"selector":{"matchLabels":{"app":"my-app"}},"template":{"metadata":{"labels":{"app":"my-app"}},"spec":{"containers":[{"image":"nginx","name":"my-container","ports":[{"containerPort":80}]}]}}}}`
	seedResponse = `{"kind":"ReplicaSet","apiVersion":"apps/v1","metadata":{"name":"my-replicaset","namespace":"default","uid":"b22383e9-e414-423c-a03e-0633a2b1484a","resourceVersion":"42746512","generation":1,"creationTimestamp":"2024-08-14T14:40:10Z"},"spec":{"replicas":2,"selector":{"matchLabels":{"app":"my-app"}},"template":{"metadata":{"creationTimestamp":null,"labels":{"app":"my-app"}},"spec":{"containers":[{"name":"my-container","image":"nginx","ports":[{"containerPort":80,"protocol":"TCP"}],"resources":{},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"Always"}],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","securityContext":{},"schedulerName":"default-scheduler"}}},"status":{"replicas":0}}`
)

// newRegistryServer serves registry.Definitions() from in-memory stores.
func newRegistryServer(t *testing.T) *testServer {
	t.Helper()
	return newTestServerWith(t, func(cfg *Config) {
		cfg.Definitions = registry.Definitions()
		withKubelet(t, cfg) // for the proxied pods subresources in discovery
	})
}

// withoutVolatile drops what differs between two creates: uid, resourceVersion,
// timestamps, and managedFields (which skiff does not record yet).
func withoutVolatile(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	md := m["metadata"].(map[string]any)
	for _, k := range []string{"uid", "resourceVersion", "creationTimestamp", "managedFields"} {
		delete(md, k)
	}
	// v1.37 omits the zero creationTimestamp the seed's v1.30 printed as null.
	tmd := m["spec"].(map[string]any)["template"].(map[string]any)["metadata"].(map[string]any)
	delete(tmd, "creationTimestamp")
	return m
}

func TestSeedCreateWithRegistry(t *testing.T) {
	s := newRegistryServer(t)
	resp := s.do(t, http.MethodPost, rsPath+"?fieldManager=kubectl-create&fieldValidation=Strict", seedRequest)
	expectCode(t, resp, http.StatusCreated)
	got, want := withoutVolatile(t, resp.body), withoutVolatile(t, []byte(seedResponse))
	if !reflect.DeepEqual(got, want) {
		t.Errorf("201 body differs from the seed's:\n got %s\nwant %s", mustJSON(t, got), mustJSON(t, want))
	}
}

func TestRegistryDiscoveryMatchesKube(t *testing.T) {
	s := newRegistryServer(t)
	var refCore, refGroups apidiscoveryv2.APIGroupDiscoveryList
	loadReference(t, "api-aggregated-discovery-v2.json", &refCore)
	loadReference(t, "apis-aggregated-discovery-v2.json", &refGroups)
	var core, groups apidiscoveryv2.APIGroupDiscoveryList
	s.do(t, http.MethodGet, "/api", "", "Accept", aggregatedAccept).into(t, &core)
	s.do(t, http.MethodGet, "/apis", "", "Accept", aggregatedAccept).into(t, &groups)

	for _, d := range registry.Definitions() {
		gv := d.GroupVersionKind.GroupVersion()
		ref, mine := refGroups, groups
		if gv.Group == "" {
			ref, mine = refCore, core
		}
		want, got := findResource(ref, gv.Group, gv.Version, d.GroupResource.Resource), findResource(mine, gv.Group, gv.Version, d.GroupResource.Resource)
		if want == nil || got == nil {
			t.Errorf("%s: reference %v, served %v", d.GroupResource, want != nil, got != nil)
			continue
		}
		// Compare with the subresources skiff serves; each must be kube's.
		w := *want
		w.Subresources = nil
		for _, sub := range want.Subresources {
			for _, served := range got.Subresources {
				if served.Subresource == sub.Subresource {
					w.Subresources = append(w.Subresources, sub)
				}
			}
		}
		if len(w.Subresources) != len(got.Subresources) {
			t.Errorf("%s serves subresources kube does not: %+v", d.GroupResource, got.Subresources)
		}
		if !reflect.DeepEqual(&w, got) {
			t.Errorf("%s:\n got %+v\nwant %+v", d.GroupResource, got, &w)
		}
	}
}
