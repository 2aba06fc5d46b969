package apiserver

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/klog/v2"
)

// userInfo is the authenticated user of a request.
type userInfo struct {
	Name   string
	Groups []string
}

type userKey struct{}

// logRecord collects what the request log line reports but inner filters learn.
type logRecord struct{ user string }

type logRecordKey struct{}

func withUser(ctx context.Context, u userInfo) context.Context {
	return context.WithValue(ctx, userKey{}, u)
}

// userFrom returns the authenticated user of the request behind ctx.
func userFrom(ctx context.Context) (userInfo, bool) {
	u, ok := ctx.Value(userKey{}).(userInfo)
	return u, ok
}

// isPublicPath tells the paths that answer without authentication, as
// kube-apiserver's system:public-info-viewer role allows them to anonymous users.
func isPublicPath(p string) bool {
	switch p {
	case "/healthz", "/livez", "/readyz", "/version":
		return true
	}
	return false
}

func (s *Server) buildHandler() http.Handler {
	var h http.Handler = http.HandlerFunc(s.route)
	h = s.withRequestTimeout(h)
	h = s.withAuthentication(h)
	h = withRecovery(h)
	h = withLoggingAndAudit(h)
	return h
}

// defaultRequestTimeout is kube-apiserver's default --request-timeout.
const defaultRequestTimeout = 60 * time.Second

// withRequestTimeout gives each request but the long-running ones a deadline, so that a
// stalled etcd answers 504 instead of holding the request forever: the storage layer
// turns an expired context into a Timeout Status.
func (s *Server) withRequestTimeout(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isLongRunning(r) {
			next.ServeHTTP(w, r)
			return
		}
		timeout := s.cfg.RequestTimeout
		if v := r.URL.Query().Get("timeout"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				writeStatusError(w, apierrors.NewBadRequest(fmt.Sprintf("invalid timeout specified in the request URL: %v", err)))
				return
			}
			if d > 0 && d < timeout {
				timeout = d
			}
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// isLongRunning tells watches and the streaming pods subresources (log, exec, attach,
// portforward), which end when the client or the server is done, not on a deadline.
func isLongRunning(r *http.Request) bool {
	switch r.URL.Query().Get("watch") {
	case "true", "1":
		return true
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	// The legacy watch paths: /api/v1/watch/... and /apis/<group>/<version>/watch/...
	if len(parts) > 2 && parts[0] == "api" && parts[2] == "watch" ||
		len(parts) > 3 && parts[0] == "apis" && parts[3] == "watch" {
		return true
	}
	// .../namespaces/<ns>/pods/<name>/<subresource>
	if n := len(parts); n >= 5 && parts[n-5] == "namespaces" && parts[n-3] == "pods" {
		switch parts[n-1] {
		case "log", "exec", "attach", "portforward":
			return true
		}
	}
	return false
}

// withAuthentication admits requests carrying a client certificate signed by the
// client CA; the user is the certificate's CN and the groups its O fields.
// Authorization is "allow every authenticated user": skiff has no RBAC yet.
func (s *Server) withAuthentication(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isPublicPath(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		u, err := s.authenticate(r)
		if err != nil {
			klog.FromContext(r.Context()).V(4).Info("Unauthorized request", "path", r.URL.Path, "err", err)
			writeStatusError(w, apierrors.NewUnauthorized("Unauthorized"))
			return
		}
		if rec, ok := r.Context().Value(logRecordKey{}).(*logRecord); ok {
			rec.user = u.Name
		}
		next.ServeHTTP(w, r.WithContext(withUser(r.Context(), u)))
	})
}

func (s *Server) authenticate(r *http.Request) (userInfo, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return userInfo{}, errors.New("no client certificate")
	}
	leaf := r.TLS.PeerCertificates[0]
	intermediates := x509.NewCertPool()
	for _, c := range r.TLS.PeerCertificates[1:] {
		intermediates.AddCert(c)
	}
	// Verify here even though the TLS layer may have done so: Handler can be served
	// by a listener whose TLS config only requests certificates (tests, embedding).
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:         s.caPool,
		Intermediates: intermediates,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return userInfo{}, fmt.Errorf("verify client certificate: %w", err)
	}
	if leaf.Subject.CommonName == "" {
		return userInfo{}, errors.New("client certificate has no common name")
	}
	groups := append(append([]string(nil), leaf.Subject.Organization...), authenticatedGroup)
	return userInfo{Name: leaf.Subject.CommonName, Groups: groups}, nil
}

// statusRecorder remembers the response code for the request log and passes Flush
// through for watches.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusRecorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// withLoggingAndAudit gives each request an Audit-Id, kube-apiserver's default
// Cache-Control, and one log line at V(4) when it ends.
func withLoggingAndAudit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		auditID := r.Header.Get("Audit-Id")
		if auditID == "" {
			auditID = string(uuid.NewUUID())
		}
		logger := klog.FromContext(r.Context()).WithValues("auditID", auditID)
		record := &logRecord{}
		ctx := context.WithValue(klog.NewContext(r.Context(), logger), logRecordKey{}, record)
		w.Header().Set("Audit-Id", auditID)
		w.Header().Set("Cache-Control", "no-cache, private")
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r.WithContext(ctx))
		if logger.V(4).Enabled() {
			logger.V(4).Info("HTTP", "verb", r.Method, "URI", r.URL.RequestURI(),
				"latency", time.Since(start), "userAgent", r.UserAgent(), "user", record.user,
				"srcIP", r.RemoteAddr, "resp", rec.code)
		}
	})
}

// withRecovery turns a panicking handler into a 500 Status instead of a dropped
// connection, except for http.ErrAbortHandler which means "drop it".
func withRecovery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if err, ok := p.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(p)
				}
				klog.FromContext(r.Context()).Error(fmt.Errorf("%v", p), "Handler panicked", "path", r.URL.Path)
				writeStatusError(w, apierrors.NewInternalError(fmt.Errorf("%v", p)))
			}
		}()
		next.ServeHTTP(w, r)
	})
}
