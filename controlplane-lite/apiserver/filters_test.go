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
