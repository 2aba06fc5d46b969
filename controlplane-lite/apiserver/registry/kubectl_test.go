package registry

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// fakeDiscoveryServer serves legacy discovery built from Definitions and, for each
// resource, a list endpoint answering with the Strategy's Table: enough for the stock
// `kubectl get` without a cluster.
func fakeDiscoveryServer(t *testing.T, lists map[string]runtime.Object) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	serveJSON := func(path string, body func(r *http.Request) any) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			if err := json.NewEncoder(w).Encode(body(r)); err != nil {
				t.Error(err)
			}
		})
	}
	resources := map[string][]metav1.APIResource{}
	groups := &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}}
	for _, d := range Definitions() {
		gv := d.GroupVersionKind.GroupVersion().String()
		if _, ok := resources[gv]; !ok && d.GroupVersionKind.Group != "" {
			version := metav1.GroupVersionForDiscovery{GroupVersion: gv, Version: d.GroupVersionKind.Version}
			groups.Groups = append(groups.Groups, metav1.APIGroup{Name: d.GroupVersionKind.Group, Versions: []metav1.GroupVersionForDiscovery{version}, PreferredVersion: version})
		}
		resources[gv] = append(resources[gv], metav1.APIResource{Name: d.GroupResource.Resource, SingularName: d.Singular,
			Namespaced: d.Namespaced, Kind: d.GroupVersionKind.Kind, Verbs: d.Verbs, ShortNames: d.ShortNames, Categories: d.Categories})
		strategy, prefix := d.Strategy, "/api/"
		if d.GroupVersionKind.Group != "" {
			prefix = "/apis/"
		}
		path := prefix + gv + "/" + d.GroupResource.Resource
		if d.Namespaced {
			path = prefix + gv + "/namespaces/default/" + d.GroupResource.Resource
		}
		serveJSON(path, func(r *http.Request) any {
			if !strings.Contains(r.Header.Get("Accept"), "as=Table") {
				t.Errorf("kubectl did not ask for a Table: %q", r.Header.Get("Accept"))
			}
			list, ok := lists[d.GroupResource.Resource]
			if !ok {
				list = d.NewListFunc()
			}
			table, err := strategy.ConvertToTable(context.Background(), list)
			if err != nil {
				t.Error(err)
				return nil
			}
			embedMetadata(t, table)
			return table
		})
	}
	serveJSON("/api", func(*http.Request) any {
		return &metav1.APIVersions{TypeMeta: metav1.TypeMeta{Kind: "APIVersions"}, Versions: []string{"v1"}}
	})
	serveJSON("/apis", func(*http.Request) any { return groups })
	for gv, list := range resources {
		path := "/apis/" + gv
		if gv == "v1" {
			path = "/api/v1"
		}
		serveJSON(path, func(*http.Request) any {
			return &metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv, APIResources: list}
		})
	}
	return httptest.NewServer(mux)
}

// embedMetadata does what the REST layer does for includeObject=Metadata, the default.
func embedMetadata(t *testing.T, table *metav1.Table) {
	for i := range table.Rows {
		m, err := apimeta.Accessor(table.Rows[i].Object.Object)
		if err != nil {
			t.Fatal(err)
		}
		partial := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{Kind: "PartialObjectMetadata", APIVersion: "meta.k8s.io/v1"}}
		partial.Name, partial.Namespace, partial.CreationTimestamp = m.GetName(), m.GetNamespace(), m.GetCreationTimestamp()
		table.Rows[i].Object = runtime.RawExtension{Object: partial}
	}
}

// TestKubectlPrintsTables runs the installed stock kubectl against the fake server and
// checks what it prints.
func TestKubectlPrintsTables(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed")
	}
	created := metav1.NewTime(time.Now().Add(-10 * time.Minute))
	running := runningPod(t)
	running.CreationTimestamp = created
	crashing := runningPod(t)
	crashing.Name, crashing.CreationTimestamp = "crasher", created
	cs := &crashing.Status.ContainerStatuses[0]
	cs.Ready, cs.RestartCount = false, 2
	cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}
	cs.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, FinishedAt: metav1.NewTime(time.Now().Add(-5 * time.Minute))}}

	rs := decodeRS(t, seedRequest)
	createRS(t, rs)
	rs.CreationTimestamp, rs.Status.Replicas, rs.Status.ReadyReplicas = created, 2, 2
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1", CreationTimestamp: created},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.37.2"}}}

	srv := fakeDiscoveryServer(t, map[string]runtime.Object{
		"pods":        &corev1.PodList{Items: []corev1.Pod{*running, *crashing}},
		"replicasets": &appsv1.ReplicaSetList{Items: []appsv1.ReplicaSet{*rs}},
		"nodes":       &corev1.NodeList{Items: []corev1.Node{*node}},
	})
	defer srv.Close()

	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"get", "pods"}, []string{
			"NAME                  READY   STATUS             RESTARTS     AGE",
			"my-replicaset-abcde   1/1     Running            0            10m",
			"crasher               0/1     CrashLoopBackOff   2 (5m ago)   10m",
		}},
		{[]string{"get", "po", "-o", "wide"}, []string{
			"NAME                  READY   STATUS             RESTARTS     AGE   IP          NODE     NOMINATED NODE   READINESS GATES",
			"my-replicaset-abcde   1/1     Running            0            10m   10.88.0.5   node-1   <none>           <none>",
		}},
		{[]string{"get", "rs", "-o", "wide"}, []string{
			"NAME            DESIRED   CURRENT   READY   AGE   CONTAINERS     IMAGES   SELECTOR",
			"my-replicaset   2         2         2       10m   my-container   nginx    app=my-app",
		}},
		{[]string{"get", "no"}, []string{
			"NAME     STATUS   ROLES    AGE   VERSION",
			"node-1   Ready    <none>   10m   v1.37.2",
		}},
	} {
		args := append([]string{"--server", srv.URL, "--kubeconfig", "/dev/null", "--cache-dir", t.TempDir(), "-n", "default"}, tc.args...)
		out, err := exec.Command(kubectl, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %v: %v\n%s", tc.args, err, out)
		}
		for _, line := range tc.want {
			if !strings.Contains(string(out), line+"\n") {
				t.Errorf("kubectl %v printed\n%s\nwithout line\n%s", tc.args, out, line)
			}
		}
	}
}
