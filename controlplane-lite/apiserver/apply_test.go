package apiserver

import (
	"net/http"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const applyYAML = `apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx
`

func TestManagedFieldsOnCreateAndUpdate(t *testing.T) {
	s := newTestServerWith(t, func(cfg *Config) { enableOpenAPI(t, cfg) })
	resp := s.do(t, http.MethodPost, rsPath+"?fieldManager=kubectl-create", rsJSON("web", ""))
	expectCode(t, resp, http.StatusCreated)
	var rs appsv1.ReplicaSet
	resp.into(t, &rs)
	if len(rs.ManagedFields) != 1 {
		t.Fatalf("managedFields = %+v", rs.ManagedFields)
	}
	mf := rs.ManagedFields[0]
	if mf.Manager != "kubectl-create" || mf.Operation != metav1.ManagedFieldsOperationUpdate || mf.APIVersion != "apps/v1" ||
		mf.FieldsType != "FieldsV1" || !strings.Contains(string(mf.FieldsV1.Raw), `"f:selector"`) {
		t.Errorf("entry = %+v %s", mf, mf.FieldsV1.Raw)
	}
	// Without fieldManager the User-Agent names the manager.
	resp = s.do(t, http.MethodPatch, rsPath+"/web", `{"metadata":{"labels":{"tier":"web"}}}`,
		"Content-Type", "application/merge-patch+json", "User-Agent", "skiff-controller/v0.1 (linux)")
	expectCode(t, resp, http.StatusOK)
	resp.into(t, &rs)
	managers := map[string]bool{}
	for _, e := range rs.ManagedFields {
		managers[e.Manager] = true
	}
	if !managers["kubectl-create"] || !managers["skiff-controller"] {
		t.Errorf("managers = %v", managers)
	}
}

func TestServerSideApply(t *testing.T) {
	s := newTestServerWith(t, func(cfg *Config) { enableOpenAPI(t, cfg) })
	apply := func(manager, body string, force bool) response {
		q := "?fieldManager=" + manager
		if force {
			q += "&force=true"
		}
		return s.do(t, http.MethodPatch, rsPath+"/web"+q, body, "Content-Type", "application/apply-patch+yaml")
	}
	resp := apply("alice", applyYAML, false)
	expectCode(t, resp, http.StatusCreated)
	var rs appsv1.ReplicaSet
	resp.into(t, &rs)
	if *rs.Spec.Replicas != 2 || rs.UID == "" || rs.Spec.Template.Spec.Containers[0].ImagePullPolicy == "" {
		t.Errorf("applied object = %+v", rs)
	}
	if len(rs.ManagedFields) != 1 || rs.ManagedFields[0].Operation != metav1.ManagedFieldsOperationApply || rs.ManagedFields[0].Manager != "alice" {
		t.Errorf("managedFields = %+v", rs.ManagedFields)
	}

	// Another manager changing alice's field conflicts, naming it; force takes it.
	bob := strings.Replace(applyYAML, "replicas: 2", "replicas: 5", 1)
	resp = apply("bob", bob, false)
	expectCode(t, resp, http.StatusConflict)
	st := resp.status(t)
	if !strings.Contains(st.Message, ".spec.replicas") || st.Details == nil || len(st.Details.Causes) == 0 {
		t.Errorf("conflict = %+v", st)
	}
	resp = apply("bob", bob, true)
	expectCode(t, resp, http.StatusOK)
	resp.into(t, &rs)
	if *rs.Spec.Replicas != 5 {
		t.Errorf("replicas after forced apply = %d", *rs.Spec.Replicas)
	}

	// alice no longer owns replicas and may apply without them.
	resp = apply("alice", strings.Replace(applyYAML, "  replicas: 2\n", "", 1), false)
	expectCode(t, resp, http.StatusOK)

	resp = s.do(t, http.MethodPatch, rsPath+"/web", applyYAML, "Content-Type", "application/apply-patch+yaml")
	expectCode(t, resp, http.StatusUnprocessableEntity)
	resp = apply("alice", strings.Replace(applyYAML, "name: web", "name: other", 1), false)
	expectCode(t, resp, http.StatusBadRequest)
	resp = apply("alice", strings.Replace(applyYAML, "  replicas: 2", "  replicas: 2\n  bogus: 1", 1), false)
	expectCode(t, resp, http.StatusBadRequest)
}

func TestApplyWithoutTypeConverter(t *testing.T) {
	s := newTestServer(t)
	resp := s.do(t, http.MethodPatch, rsPath+"/web?fieldManager=a", applyYAML, "Content-Type", "application/apply-patch+yaml")
	expectCode(t, resp, http.StatusUnsupportedMediaType)
}
