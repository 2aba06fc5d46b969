package apiserver

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/version"
)

// referenceDir holds the answers of a real kube-apiserver v1.37.2 (shared/ sits
// beside the repository, in development and in CI).
const referenceDir = "../../../shared/reference/upstream-v1.37.2"

func loadReference(t *testing.T, name string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(referenceDir, name))
	if os.IsNotExist(err) {
		t.Skipf("reference %s not present", name)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}

const aggregatedAccept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"

func findResource(list apidiscoveryv2.APIGroupDiscoveryList, group, version, resource string) *apidiscoveryv2.APIResourceDiscovery {
	for _, g := range list.Items {
		if g.Name != group {
			continue
		}
		for _, v := range g.Versions {
			if v.Version != version {
				continue
			}
			for i := range v.Resources {
				if v.Resources[i].Resource == resource {
					return &v.Resources[i]
				}
			}
		}
	}
	return nil
}

func TestAggregatedDiscoveryMatchesKube(t *testing.T) {
	s := newTestServer(t)
	var refCore, refGroups apidiscoveryv2.APIGroupDiscoveryList
	loadReference(t, "api-aggregated-discovery-v2.json", &refCore)
	loadReference(t, "apis-aggregated-discovery-v2.json", &refGroups)

	get := func(path string) apidiscoveryv2.APIGroupDiscoveryList {
		resp := s.do(t, http.MethodGet, path, "", "Accept", aggregatedAccept)
		expectCode(t, resp, http.StatusOK)
		if ct := resp.header.Get("Content-Type"); ct != aggregatedMediaType {
			t.Errorf("%s Content-Type = %q", path, ct)
		}
		var list apidiscoveryv2.APIGroupDiscoveryList
		resp.into(t, &list)
		if list.Kind != "APIGroupDiscoveryList" || list.APIVersion != "apidiscovery.k8s.io/v2" {
			t.Errorf("%s typeMeta = %v", path, list.TypeMeta)
		}
		return list
	}
	core, groups := get("/api"), get("/apis")
	if len(core.Items) != 1 || core.Items[0].Name != "" || core.Items[0].Versions[0].Freshness != "Current" {
		t.Fatalf("/api items = %+v", core.Items)
	}
	if len(groups.Items) != 1 || groups.Items[0].Name != "apps" {
		t.Fatalf("/apis items = %+v", groups.Items)
	}

	// replicasets is served exactly as kube-apiserver serves it, subresources included.
	want, got := findResource(refGroups, "apps", "v1", "replicasets"), findResource(groups, "apps", "v1", "replicasets")
	if want == nil || got == nil || !reflect.DeepEqual(want, got) {
		t.Errorf("replicasets:\n got %+v\nwant %+v", got, want)
	}
	// pods and namespaces: the same entry, with the subresources skiff serves.
	for _, name := range []string{"pods", "namespaces"} {
		want, got := findResource(refCore, "", "v1", name), findResource(core, "", "v1", name)
		if want == nil || got == nil {
			t.Fatalf("%s missing: got %v want %v", name, got, want)
		}
		kept := want.Subresources[:0:0]
		for _, sub := range want.Subresources {
			for _, mine := range got.Subresources {
				if mine.Subresource == sub.Subresource {
					kept = append(kept, sub)
				}
			}
		}
		if len(kept) != len(got.Subresources) {
			t.Errorf("%s serves subresources kube does not: %+v", name, got.Subresources)
		}
		w := *want
		w.Subresources = kept
		if len(kept) == 0 {
			w.Subresources = nil
		}
		if !reflect.DeepEqual(&w, got) {
			t.Errorf("%s:\n got %+v\nwant %+v", name, got, &w)
		}
	}
}

func TestLegacyDiscoveryMatchesKube(t *testing.T) {
	s := newTestServer(t)
	var ref metav1.APIResourceList
	loadReference(t, "apis-apps-v1.json", &ref)

	resp := s.do(t, http.MethodGet, "/apis/apps/v1", "")
	expectCode(t, resp, http.StatusOK)
	var got metav1.APIResourceList
	resp.into(t, &got)
	if got.Kind != "APIResourceList" || got.GroupVersion != "apps/v1" || len(got.APIResources) != 3 {
		t.Fatalf("resource list = %s", resp.body)
	}
	byName := map[string]metav1.APIResource{}
	for _, r := range ref.APIResources {
		byName[r.Name] = r
	}
	for _, r := range got.APIResources {
		if want := byName[r.Name]; !reflect.DeepEqual(want, r) {
			t.Errorf("%s:\n got %+v\nwant %+v", r.Name, r, want)
		}
	}

	var apiVersions metav1.APIVersions
	s.do(t, http.MethodGet, "/api", "", "Accept", "application/json").into(t, &apiVersions)
	if apiVersions.Kind != "APIVersions" || len(apiVersions.Versions) != 1 || apiVersions.Versions[0] != "v1" || len(apiVersions.ServerAddressByClientCIDRs) != 1 {
		t.Errorf("/api = %+v", apiVersions)
	}
	var groups metav1.APIGroupList
	s.do(t, http.MethodGet, "/apis", "").into(t, &groups)
	if len(groups.Groups) != 1 || groups.Groups[0].Name != "apps" || groups.Groups[0].PreferredVersion.GroupVersion != "apps/v1" {
		t.Errorf("/apis = %+v", groups)
	}
	var group metav1.APIGroup
	s.do(t, http.MethodGet, "/apis/apps", "").into(t, &group)
	if group.Kind != "APIGroup" || group.Name != "apps" {
		t.Errorf("/apis/apps = %+v", group)
	}
	var core metav1.APIResourceList
	s.do(t, http.MethodGet, "/api/v1", "").into(t, &core)
	names := map[string]bool{}
	for _, r := range core.APIResources {
		names[r.Name] = true
	}
	for _, n := range []string{"namespaces", "pods", "pods/binding", "pods/status"} {
		if !names[n] {
			t.Errorf("/api/v1 lacks %s: %v", n, names)
		}
	}
	expectCode(t, s.do(t, http.MethodGet, "/apis/batch", ""), http.StatusNotFound)
}

func TestVersionAndHealth(t *testing.T) {
	s := newTestServer(t)
	var ref, got version.Info
	loadReference(t, "version.json", &ref)
	resp := s.do(t, http.MethodGet, "/version", "")
	expectCode(t, resp, http.StatusOK)
	resp.into(t, &got)
	if got.Major != ref.Major || got.Minor != ref.Minor || got.GitVersion == "" || got.Platform == "" {
		t.Errorf("version = %+v, reference %+v", got, ref)
	}
	for _, p := range []string{"/healthz", "/readyz", "/livez", "/readyz/ping"} {
		resp := s.do(t, http.MethodGet, p, "")
		if resp.code != http.StatusOK || string(resp.body) != "ok" {
			t.Errorf("%s: %d %q", p, resp.code, resp.body)
		}
	}
	resp = s.do(t, http.MethodGet, "/openapi/v3", "")
	if resp.code != http.StatusOK || string(resp.body) != `{"paths":{}}` {
		t.Errorf("/openapi/v3 not delegated: %d %s", resp.code, resp.body)
	}
}
