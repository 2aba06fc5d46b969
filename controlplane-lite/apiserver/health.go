package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"k8s.io/klog/v2"
)

// healthCheckTimeout bounds one health check, as kube-apiserver bounds its etcd check.
const healthCheckTimeout = 2 * time.Second

// HealthCheck is a named check of /livez, /readyz and /healthz (kube-apiserver's etcd
// check reads etcd with quorum).
type HealthCheck struct {
	Name  string
	Check func(ctx context.Context) error
}

// healthChecks are the configured checks behind the always-passing "ping".
func (s *Server) healthChecks() []HealthCheck {
	ping := HealthCheck{Name: "ping", Check: func(context.Context) error { return nil }}
	return append([]HealthCheck{ping}, s.cfg.HealthChecks...)
}

// serveHealth answers /livez, /readyz and /healthz (all checks) and /readyz/<name>
// (one check) as kube-apiserver does: "ok", or 500 listing each check with [+] or [-].
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request, p string) {
	base, name, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	checks := s.healthChecks()
	if name != "" {
		checks = filterChecks(checks, name)
		if len(checks) == 0 {
			http.Error(w, fmt.Sprintf("%s check %q not found", base, name), http.StatusNotFound)
			return
		}
	}
	var report strings.Builder
	failed := false
	for _, c := range checks {
		if err := runCheck(r.Context(), c); err != nil {
			failed = true
			klog.FromContext(r.Context()).Info("Health check failed", "endpoint", base, "check", c.Name, "err", err)
			fmt.Fprintf(&report, "[-]%s failed: reason withheld\n", c.Name)
			continue
		}
		fmt.Fprintf(&report, "[+]%s ok\n", c.Name)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if failed {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, "%s%s check failed\n", report.String(), base)
		return
	}
	if r.URL.Query().Has("verbose") {
		fmt.Fprintf(w, "%s%s check passed\n", report.String(), base)
		return
	}
	_, _ = w.Write([]byte("ok"))
}

func filterChecks(checks []HealthCheck, name string) []HealthCheck {
	for _, c := range checks {
		if c.Name == name {
			return []HealthCheck{c}
		}
	}
	return nil
}

func runCheck(ctx context.Context, c HealthCheck) error {
	ctx, cancel := context.WithTimeout(ctx, healthCheckTimeout)
	defer cancel()
	return c.Check(ctx)
}
