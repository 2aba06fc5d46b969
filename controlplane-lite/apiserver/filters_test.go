package apiserver

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
)

func TestRequestLogAtV4(t *testing.T) {
	s := newTestServer(t)
	logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.Verbosity(4), ktesting.BufferLogs(true)))
	ctx := klog.NewContext(t.Context(), logger)
	req := requestWithCert(t, s.clientCert).WithContext(ctx)
	req.Header.Set("Audit-Id", "audit-123")
	req.Header.Set("User-Agent", "kubectl/v1.32.4")
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || rec.Header().Get("Audit-Id") != "audit-123" {
		t.Fatalf("GET /api: %d %v", rec.Code, rec.Header())
	}
	logs := logger.GetSink().(ktesting.Underlier).GetBuffer().String()
	for _, want := range []string{"INFO HTTP", `verb="GET"`, `URI="/api"`, `user="admin"`, `resp=200`, `auditID="audit-123"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("request log lacks %s:\n%s", want, logs)
		}
	}
}

func TestIsLongRunning(t *testing.T) {
	for path, want := range map[string]bool{
		"/api/v1/pods?watch=true":                            true,
		"/api/v1/watch/pods":                                 true,
		"/apis/apps/v1/watch/namespaces/default/replicasets": true,
		"/api/v1/namespaces/default/pods/web/log":            true,
		"/api/v1/namespaces/default/pods/web/exec":           true,
		"/api/v1/namespaces/default/pods/web":                false,
		"/api/v1/namespaces/default/configmaps/watch":        false,
		"/api/v1/namespaces/default/configmaps/log":          false,
		"/apis/apps/v1/replicasets?watch=false":              false,
	} {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		if got := isLongRunning(r); got != want {
			t.Errorf("isLongRunning(%s) = %v, want %v", path, got, want)
		}
	}
}
