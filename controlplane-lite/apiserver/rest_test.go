package apiserver

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestCreateAppliesDefaultsAndSystemFields(t *testing.T) {
	s := newTestServer(t)
	resp := s.do(t, http.MethodPost, rsPath+"?fieldManager=kubectl-create&fieldValidation=Strict", rsJSON("my-app", ""))
	expectCode(t, resp, http.StatusCreated)
	if ct := resp.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if resp.header.Get("Audit-Id") == "" || resp.header.Get("Cache-Control") != "no-cache, private" {
		t.Errorf("missing kube-apiserver headers: %v", resp.header)
	}
	var rs appsv1.ReplicaSet
	resp.into(t, &rs)
	if rs.APIVersion != "apps/v1" || rs.Kind != "ReplicaSet" {
		t.Errorf("typeMeta = %v", rs.TypeMeta)
	}
	if rs.UID == "" || rs.ResourceVersion == "" || rs.CreationTimestamp.IsZero() || rs.Generation != 1 {
		t.Errorf("system fields not set: %+v", rs.ObjectMeta)
	}
	if rs.Spec.Replicas == nil || *rs.Spec.Replicas != 1 {
		t.Errorf("replicas not defaulted: %v", rs.Spec.Replicas)
	}
	c := rs.Spec.Template.Spec.Containers[0]
	if c.ImagePullPolicy != corev1.PullAlways || rs.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		t.Errorf("template not defaulted: %+v", rs.Spec.Template.Spec)
	}

	// The object is stored, and a second create of the same name conflicts.
	get := s.do(t, http.MethodGet, rsPath+"/my-app", "")
	expectCode(t, get, http.StatusOK)
	again := s.do(t, http.MethodPost, rsPath, rsJSON("my-app", ""))
	expectCode(t, again, http.StatusConflict)
	if st := again.status(t); st.Reason != metav1.StatusReasonAlreadyExists {
		t.Errorf("reason = %s", st.Reason)
	}
}

func TestCreateFieldValidation(t *testing.T) {
	s := newTestServer(t)
	body := rsJSON("strict", `"foo":1,`)

	resp := s.do(t, http.MethodPost, rsPath+"?fieldValidation=Strict", body)
	expectCode(t, resp, http.StatusBadRequest)
	st := resp.status(t)
	if st.Reason != metav1.StatusReasonBadRequest || st.Message != `strict decoding error: unknown field "spec.foo"` {
		t.Errorf("status = %+v", st)
	}

	dup := `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a","name":"b"}}`
	resp = s.do(t, http.MethodPost, "/api/v1/namespaces?fieldValidation=Strict", dup)
	expectCode(t, resp, http.StatusBadRequest)
	if msg := resp.status(t).Message; !strings.Contains(msg, `duplicate field "metadata.name"`) {
		t.Errorf("message = %q", msg)
	}

	resp = s.do(t, http.MethodPost, rsPath+"?fieldValidation=Warn", body)
	expectCode(t, resp, http.StatusCreated)
	if w := resp.header.Get("Warning"); w != `299 - "unknown field \"spec.foo\""` {
		t.Errorf("Warning = %q", w)
	}

	resp = s.do(t, http.MethodPost, rsPath+"?fieldValidation=Ignore", rsJSON("ignored", `"foo":1,`))
	expectCode(t, resp, http.StatusCreated)
	if w := resp.header.Get("Warning"); w != "" {
		t.Errorf("Warning = %q with Ignore", w)
	}

	resp = s.do(t, http.MethodPost, rsPath+"?fieldValidation=Loud", body)
	expectCode(t, resp, http.StatusBadRequest)
}

func TestCreateInvalidNamesTheFields(t *testing.T) {
	s := newTestServer(t)
	body := `{"apiVersion":"apps/v1","kind":"ReplicaSet","metadata":{"name":"bad"},"spec":{"replicas":-1,"template":{"metadata":{"labels":{"app":"x"}}}}}`
	resp := s.do(t, http.MethodPost, rsPath, body)
	expectCode(t, resp, http.StatusUnprocessableEntity)
	st := resp.status(t)
	if st.Reason != metav1.StatusReasonInvalid || st.Details == nil || st.Details.Kind != "ReplicaSet" || st.Details.Group != "apps" || st.Details.Name != "bad" {
		t.Fatalf("status = %+v", st)
	}
	fields := map[string]bool{}
	for _, c := range st.Details.Causes {
		fields[c.Field] = true
	}
	if !fields["spec.replicas"] || !fields["spec.selector"] {
		t.Errorf("causes = %+v", st.Details.Causes)
	}
	if !strings.HasPrefix(st.Message, `ReplicaSet.apps "bad" is invalid: `) {
		t.Errorf("message = %q", st.Message)
	}
}

func TestCreateNamespaceChecks(t *testing.T) {
	s := newTestServer(t)
	resp := s.do(t, http.MethodPost, "/apis/apps/v1/namespaces/nowhere/replicasets",
		strings.Replace(rsJSON("x", ""), `,"namespace":"default"`, "", 1))
	expectCode(t, resp, http.StatusNotFound)
	st := resp.status(t)
	if st.Message != `namespaces "nowhere" not found` || st.Details.Kind != "namespaces" {
		t.Errorf("status = %+v", st)
	}

	other := strings.Replace(rsJSON("x", ""), `"namespace":"default"`, `"namespace":"kube-system"`, 1)
	resp = s.do(t, http.MethodPost, rsPath, other)
	expectCode(t, resp, http.StatusBadRequest)
	if msg := resp.status(t).Message; msg != "the namespace of the provided object does not match the namespace sent on the request" {
		t.Errorf("message = %q", msg)
	}

	// A create without a namespace in the body takes the path's.
	noNS := strings.Replace(rsJSON("y", ""), `,"namespace":"default"`, "", 1)
	resp = s.do(t, http.MethodPost, "/apis/apps/v1/namespaces/kube-system/replicasets", noNS)
	expectCode(t, resp, http.StatusCreated)
	var rs appsv1.ReplicaSet
	resp.into(t, &rs)
	if rs.Namespace != "kube-system" {
		t.Errorf("namespace = %q", rs.Namespace)
	}
}

func TestGenerateName(t *testing.T) {
	s := newTestServer(t)
	body := `{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"my-replicaset-"},"spec":{"containers":[{"name":"c","image":"nginx"}]}}`
	names := map[string]bool{}
	for range 3 {
		resp := s.do(t, http.MethodPost, "/api/v1/namespaces/default/pods", body)
		expectCode(t, resp, http.StatusCreated)
		var pod corev1.Pod
		resp.into(t, &pod)
		if !regexp.MustCompile(`^my-replicaset-[bcdfghjklmnpqrstvwxz2456789]{5}$`).MatchString(pod.Name) {
			t.Errorf("generated name %q", pod.Name)
		}
		names[pod.Name] = true
	}
	if len(names) != 3 {
		t.Errorf("names repeat: %v", names)
	}
}

func TestDryRunStoresNothing(t *testing.T) {
	s := newTestServer(t)
	resp := s.do(t, http.MethodPost, rsPath+"?dryRun=All", rsJSON("dry", ""))
	expectCode(t, resp, http.StatusCreated)
	expectCode(t, s.do(t, http.MethodGet, rsPath+"/dry", ""), http.StatusNotFound)
	expectCode(t, s.do(t, http.MethodPost, rsPath+"?dryRun=Some", rsJSON("dry", "")), http.StatusBadRequest)
}

func createRS(t *testing.T, s *testServer, name string) appsv1.ReplicaSet {
	t.Helper()
	resp := s.do(t, http.MethodPost, rsPath, rsJSON(name, `"replicas":2,`))
	expectCode(t, resp, http.StatusCreated)
	var rs appsv1.ReplicaSet
	resp.into(t, &rs)
	return rs
}

func TestUpdateOptimisticConcurrency(t *testing.T) {
	s := newTestServer(t)
	rs := createRS(t, s, "web")
	body := func(rv string, replicas string) string {
		return strings.Replace(rsJSON("web", `"replicas":`+replicas+`,`), `"namespace":"default"`,
			`"namespace":"default","resourceVersion":"`+rv+`"`, 1)
	}
	resp := s.do(t, http.MethodPut, rsPath+"/web", body(rs.ResourceVersion, "3"))
	expectCode(t, resp, http.StatusOK)
	var updated appsv1.ReplicaSet
	resp.into(t, &updated)
	if *updated.Spec.Replicas != 3 || updated.Generation != 2 || updated.UID != rs.UID || !updated.CreationTimestamp.Equal(&rs.CreationTimestamp) {
		t.Errorf("update result %+v", updated.ObjectMeta)
	}

	resp = s.do(t, http.MethodPut, rsPath+"/web", body(rs.ResourceVersion, "4"))
	expectCode(t, resp, http.StatusConflict)
	if st := resp.status(t); st.Reason != metav1.StatusReasonConflict {
		t.Errorf("status = %+v", st)
	}

	// Without a resourceVersion the update is unconditional.
	resp = s.do(t, http.MethodPut, rsPath+"/web", rsJSON("web", `"replicas":5,`))
	expectCode(t, resp, http.StatusOK)

	resp = s.do(t, http.MethodPut, rsPath+"/other", rsJSON("web", ""))
	expectCode(t, resp, http.StatusBadRequest)

	// The selector is immutable: 422 naming it.
	changed := strings.ReplaceAll(rsJSON("web", ""), `"app":"my-app"`, `"app":"new"`)
	resp = s.do(t, http.MethodPut, rsPath+"/web", changed)
	expectCode(t, resp, http.StatusUnprocessableEntity)
	if c := resp.status(t).Details.Causes; len(c) != 1 || c[0].Field != "spec.selector" {
		t.Errorf("causes = %+v", c)
	}
}

func TestPatchTypes(t *testing.T) {
	s := newTestServer(t)
	createRS(t, s, "web")
	patch := func(ct, body string) appsv1.ReplicaSet {
		t.Helper()
		resp := s.do(t, http.MethodPatch, rsPath+"/web", body, "Content-Type", ct)
		expectCode(t, resp, http.StatusOK)
		var rs appsv1.ReplicaSet
		resp.into(t, &rs)
		return rs
	}
	rs := patch("application/merge-patch+json", `{"spec":{"replicas":4},"metadata":{"labels":{"tier":"web"}}}`)
	if *rs.Spec.Replicas != 4 || rs.Labels["tier"] != "web" || rs.Labels["app"] != "my-app" {
		t.Errorf("merge patch: %v %v", *rs.Spec.Replicas, rs.Labels)
	}
	rs = patch("application/json-patch+json", `[{"op":"replace","path":"/spec/replicas","value":1}]`)
	if *rs.Spec.Replicas != 1 {
		t.Errorf("json patch: replicas %d", *rs.Spec.Replicas)
	}
	// A strategic merge patch merges containers by name instead of replacing the list.
	rs = patch("application/strategic-merge-patch+json",
		`{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox:1.36"}]}}}}`)
	if n := len(rs.Spec.Template.Spec.Containers); n != 2 {
		t.Fatalf("strategic patch: %d containers", n)
	}
	for _, c := range rs.Spec.Template.Spec.Containers {
		if c.Name == "sidecar" && c.ImagePullPolicy != corev1.PullIfNotPresent {
			t.Errorf("patched container not defaulted: %+v", c)
		}
	}

	resp := s.do(t, http.MethodPatch, rsPath+"/web?fieldValidation=Strict", `{"spec":{"bogus":1}}`, "Content-Type", "application/merge-patch+json")
	expectCode(t, resp, http.StatusBadRequest)
	resp = s.do(t, http.MethodPatch, rsPath+"/web", `{"metadata":{"resourceVersion":"1"}}`, "Content-Type", "application/merge-patch+json")
	expectCode(t, resp, http.StatusConflict)
	resp = s.do(t, http.MethodPatch, rsPath+"/web", `apiVersion: apps/v1`, "Content-Type", "application/apply-patch+yaml")
	expectCode(t, resp, http.StatusUnsupportedMediaType)
	resp = s.do(t, http.MethodPatch, rsPath+"/missing", `{}`, "Content-Type", "application/merge-patch+json")
	expectCode(t, resp, http.StatusNotFound)
}

func TestStatusAndScaleSubresources(t *testing.T) {
	s := newTestServer(t)
	rs := createRS(t, s, "web")

	// A status write changes the status only.
	rs.Status.Replicas = 2
	rs.Spec.Replicas = ptrTo(int32(9))
	resp := s.do(t, http.MethodPut, rsPath+"/web/status", mustJSON(t, rs))
	expectCode(t, resp, http.StatusOK)
	var got appsv1.ReplicaSet
	resp.into(t, &got)
	if got.Status.Replicas != 2 || *got.Spec.Replicas != 2 {
		t.Errorf("status update: status %d spec %d", got.Status.Replicas, *got.Spec.Replicas)
	}
	// And a write of the main resource keeps it.
	resp = s.do(t, http.MethodPatch, rsPath+"/web", `{"status":{"replicas":7}}`, "Content-Type", "application/merge-patch+json")
	expectCode(t, resp, http.StatusOK)
	resp.into(t, &got)
	if got.Status.Replicas != 2 {
		t.Errorf("main resource changed status to %d", got.Status.Replicas)
	}

	resp = s.do(t, http.MethodGet, rsPath+"/web/scale", "")
	expectCode(t, resp, http.StatusOK)
	var scale autoscalingv1.Scale
	resp.into(t, &scale)
	if scale.APIVersion != "autoscaling/v1" || scale.Kind != "Scale" || scale.Spec.Replicas != 2 || scale.Status.Replicas != 2 {
		t.Errorf("scale = %+v", scale)
	}
	scale.Spec.Replicas = 5
	resp = s.do(t, http.MethodPut, rsPath+"/web/scale", mustJSON(t, scale))
	expectCode(t, resp, http.StatusOK)
	resp.into(t, &scale)
	if scale.Spec.Replicas != 5 {
		t.Errorf("scale after update = %d", scale.Spec.Replicas)
	}
	// The Scale read before the update is stale now.
	resp = s.do(t, http.MethodPut, rsPath+"/web/scale", strings.Replace(mustJSON(t, scale), scale.ResourceVersion, got.ResourceVersion, 1))
	expectCode(t, resp, http.StatusConflict)
	resp = s.do(t, http.MethodPatch, rsPath+"/web/scale", `{"spec":{"replicas":3}}`, "Content-Type", "application/merge-patch+json")
	expectCode(t, resp, http.StatusOK)
	resp = s.do(t, http.MethodGet, rsPath+"/web", "")
	resp.into(t, &got)
	if *got.Spec.Replicas != 3 || got.Generation <= rs.Generation {
		t.Errorf("after scale patch: replicas %d generation %d", *got.Spec.Replicas, got.Generation)
	}
	expectCode(t, s.do(t, http.MethodDelete, rsPath+"/web/scale", ""), http.StatusMethodNotAllowed)
	expectCode(t, s.do(t, http.MethodGet, rsPath+"/web/nothing", ""), http.StatusNotFound)
}

func TestPodBinding(t *testing.T) {
	s := newTestServer(t)
	pod := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"nginx"}]}}`
	expectCode(t, s.do(t, http.MethodPost, "/api/v1/namespaces/default/pods", pod), http.StatusCreated)
	binding := `{"apiVersion":"v1","kind":"Binding","metadata":{"name":"p","namespace":"default"},"target":{"kind":"Node","name":"node-1"}}`
	resp := s.do(t, http.MethodPost, "/api/v1/namespaces/default/pods/p/binding", binding)
	expectCode(t, resp, http.StatusCreated)
	if st := resp.status(t); st.Status != metav1.StatusSuccess || st.Code != http.StatusCreated {
		t.Errorf("binding answer = %+v", st)
	}
	resp = s.do(t, http.MethodGet, "/api/v1/namespaces/default/pods/p", "")
	var got corev1.Pod
	resp.into(t, &got)
	if got.Spec.NodeName != "node-1" {
		t.Errorf("nodeName = %q", got.Spec.NodeName)
	}
	expectCode(t, s.do(t, http.MethodPost, "/api/v1/namespaces/default/pods/p/binding", binding), http.StatusConflict)

	// Field selectors filter by the resource's fields and reject unknown ones.
	resp = s.do(t, http.MethodGet, "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1", "")
	expectCode(t, resp, http.StatusOK)
	var list corev1.PodList
	resp.into(t, &list)
	if list.Kind != "PodList" || list.APIVersion != "v1" || list.ResourceVersion == "" || len(list.Items) != 1 {
		t.Errorf("list = %s", resp.body)
	}
	resp = s.do(t, http.MethodGet, "/api/v1/pods?fieldSelector=spec.nodeName%3Dother", "")
	resp.into(t, &list)
	if len(list.Items) != 0 {
		t.Errorf("field selector did not filter: %d items", len(list.Items))
	}
	resp = s.do(t, http.MethodGet, "/api/v1/namespaces/default/pods?fieldSelector=spec.foo%3Dx", "")
	expectCode(t, resp, http.StatusBadRequest)
	if msg := resp.status(t).Message; msg != "field label not supported: spec.foo" {
		t.Errorf("message = %q", msg)
	}
	resp = s.do(t, http.MethodGet, "/api/v1/namespaces/default/pods?labelSelector=a%20in", "")
	expectCode(t, resp, http.StatusBadRequest)
}

func TestDeleteGracefulAndFinalizers(t *testing.T) {
	s := newTestServer(t)
	// A bound pod is deleted gracefully: marked first, removed by a delete with grace 0.
	pod := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"nodeName":"n1","terminationGracePeriodSeconds":10,"containers":[{"name":"c","image":"nginx"}]}}`
	expectCode(t, s.do(t, http.MethodPost, "/api/v1/namespaces/default/pods", pod), http.StatusCreated)
	resp := s.do(t, http.MethodDelete, "/api/v1/namespaces/default/pods/p", "")
	expectCode(t, resp, http.StatusOK)
	var marked corev1.Pod
	resp.into(t, &marked)
	if marked.DeletionTimestamp == nil || marked.DeletionGracePeriodSeconds == nil || *marked.DeletionGracePeriodSeconds != 10 {
		t.Fatalf("pod not marked: %+v", marked.ObjectMeta)
	}
	resp = s.do(t, http.MethodDelete, "/api/v1/namespaces/default/pods/p?gracePeriodSeconds=0", "")
	expectCode(t, resp, http.StatusOK)
	if st := resp.status(t); st.Status != metav1.StatusSuccess || st.Details.Name != "p" || st.Details.UID != marked.UID {
		t.Errorf("delete answer = %+v", st)
	}
	expectCode(t, s.do(t, http.MethodGet, "/api/v1/namespaces/default/pods/p", ""), http.StatusNotFound)

	// Foreground adds the garbage collector's finalizer; emptying the finalizers removes it.
	createRS(t, s, "web")
	resp = s.do(t, http.MethodDelete, rsPath+"/web", `{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Foreground"}`)
	expectCode(t, resp, http.StatusAccepted)
	var rs appsv1.ReplicaSet
	resp.into(t, &rs)
	if rs.DeletionTimestamp == nil || len(rs.Finalizers) != 1 || rs.Finalizers[0] != metav1.FinalizerDeleteDependents {
		t.Fatalf("rs not marked for foreground deletion: %+v", rs.ObjectMeta)
	}
	resp = s.do(t, http.MethodPatch, rsPath+"/web", `{"metadata":{"finalizers":null}}`, "Content-Type", "application/merge-patch+json")
	expectCode(t, resp, http.StatusOK)
	expectCode(t, s.do(t, http.MethodGet, rsPath+"/web", ""), http.StatusNotFound)

	// Orphan, and a stale uid precondition.
	rs = createRS(t, s, "orphan")
	resp = s.do(t, http.MethodDelete, rsPath+"/orphan", `{"preconditions":{"uid":"nope"}}`)
	expectCode(t, resp, http.StatusConflict)
	resp = s.do(t, http.MethodDelete, rsPath+"/orphan?propagationPolicy=Orphan", "")
	expectCode(t, resp, http.StatusOK)
	resp.into(t, &rs)
	if len(rs.Finalizers) != 1 || rs.Finalizers[0] != metav1.FinalizerOrphanDependents {
		t.Errorf("finalizers = %v", rs.Finalizers)
	}

	// Background (the default) removes at once.
	createRS(t, s, "bg")
	expectCode(t, s.do(t, http.MethodDelete, rsPath+"/bg", ""), http.StatusOK)
	expectCode(t, s.do(t, http.MethodDelete, rsPath+"/bg", ""), http.StatusNotFound)
}

func TestDeleteCollection(t *testing.T) {
	s := newTestServer(t)
	createRS(t, s, "a")
	createRS(t, s, "b")
	other := strings.Replace(rsJSON("c", ""), `"app":"my-app"`, `"app":"other"`, 1)
	other = strings.Replace(other, `"labels":{"app":"my-app"},"name"`, `"labels":{"app":"other"},"name"`, 1)
	expectCode(t, s.do(t, http.MethodPost, rsPath, other), http.StatusCreated)
	resp := s.do(t, http.MethodDelete, rsPath+"?labelSelector=app%3Dmy-app", "")
	expectCode(t, resp, http.StatusOK)
	var deleted appsv1.ReplicaSetList
	resp.into(t, &deleted)
	if deleted.Kind != "ReplicaSetList" || len(deleted.Items) != 2 {
		t.Errorf("deleted = %s", resp.body)
	}
	var left appsv1.ReplicaSetList
	s.do(t, http.MethodGet, rsPath, "").into(t, &left)
	if len(left.Items) != 1 || left.Items[0].Name != "c" {
		t.Errorf("left = %+v", left.Items)
	}
}

func TestErrorsAreStatus(t *testing.T) {
	s := newTestServer(t)
	for _, tc := range []struct {
		method, path string
		code         int
		reason       metav1.StatusReason
	}{
		{http.MethodGet, "/nope", http.StatusNotFound, metav1.StatusReasonNotFound},
		{http.MethodGet, "/apis/batch/v1/jobs", http.StatusNotFound, metav1.StatusReasonNotFound},
		{http.MethodGet, "/api/v1/widgets", http.StatusNotFound, metav1.StatusReasonNotFound},
		{http.MethodGet, "/api/v1/namespaces/default/pods/missing", http.StatusNotFound, metav1.StatusReasonNotFound},
		{http.MethodGet, "/api/v1/namespaces/default/namespaces", http.StatusNotFound, metav1.StatusReasonNotFound},
		{http.MethodPost, "/api/v1/pods", http.StatusNotFound, metav1.StatusReasonNotFound},
		{http.MethodDelete, "/api/v1/namespaces", http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed},
		{http.MethodPost, "/api/v1/namespaces/default/pods/p", http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed},
	} {
		resp := s.do(t, tc.method, tc.path, "")
		if resp.code != tc.code {
			t.Errorf("%s %s: %d, want %d: %s", tc.method, tc.path, resp.code, tc.code, resp.body)
			continue
		}
		if st := resp.status(t); st.Reason != tc.reason || st.Code != int32(tc.code) || st.APIVersion != "v1" {
			t.Errorf("%s %s: status %+v", tc.method, tc.path, st)
		}
	}
	resp := s.do(t, http.MethodGet, rsPath+"/x", "", "Accept", "text/html")
	expectCode(t, resp, http.StatusNotAcceptable)
	resp = s.do(t, http.MethodPost, rsPath, "x", "Content-Type", "text/plain")
	expectCode(t, resp, http.StatusUnsupportedMediaType)
}

func TestYAMLAndProtobuf(t *testing.T) {
	s := newTestServer(t)
	yamlBody := "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: from-yaml\n"
	resp := s.do(t, http.MethodPost, "/api/v1/namespaces", yamlBody, "Content-Type", "application/yaml", "Accept", "application/yaml")
	expectCode(t, resp, http.StatusCreated)
	if !strings.Contains(string(resp.body), "name: from-yaml") || resp.header.Get("Content-Type") != "application/yaml" {
		t.Errorf("yaml answer %q", resp.body)
	}
	resp = s.do(t, http.MethodGet, "/api/v1/namespaces/from-yaml", "", "Accept", "application/vnd.kubernetes.protobuf")
	expectCode(t, resp, http.StatusOK)
	if !strings.HasPrefix(string(resp.body), "k8s\x00") {
		t.Errorf("protobuf answer lacks the k8s envelope: %q", resp.body[:min(len(resp.body), 8)])
	}
}

func TestAuthentication(t *testing.T) {
	s := newTestServer(t)
	anon := s.ts.Client() // trusts the server, sends no client certificate
	resp, err := anon.Get(s.ts.URL + "/api/v1/namespaces")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("anonymous list: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, p := range []string{"/healthz", "/livez", "/readyz", "/version"} {
		resp, err := anon.Get(s.ts.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
	// The handler itself also refuses a certificate of another CA, for listeners
	// that only request client certificates.
	other := newTestCA(t, "other")
	certPEM, _ := other.issue(t, pkixName("mallory"), x509ClientAuth)
	if _, err := s.authenticate(requestWithCert(t, certPEM)); err == nil {
		t.Error("a certificate of another CA authenticated")
	}
	if u, err := s.authenticate(requestWithCert(t, s.clientCert)); err != nil || u.Name != "admin" || len(u.Groups) != 2 || u.Groups[0] != "system:masters" || u.Groups[1] != "system:authenticated" {
		t.Errorf("admin certificate: %+v %v", u, err)
	}
}

// An empty namespace segment names no namespace: it is not a list across all of them.
func TestEmptyNamespaceSegmentIsNotFound(t *testing.T) {
	s := newTestServer(t)
	expectCode(t, s.do(t, http.MethodPost, "/apis/apps/v1/namespaces/default/replicasets", rsJSON("web", "")), http.StatusCreated)
	for _, path := range []string{"/apis/apps/v1/namespaces//replicasets", "/apis/apps/v1/namespaces//replicasets/web"} {
		expectCode(t, s.do(t, http.MethodGet, path, ""), http.StatusNotFound)
	}
	expectCode(t, s.do(t, http.MethodGet, "/apis/apps/v1/replicasets", ""), http.StatusOK)
}
