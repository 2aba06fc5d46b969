package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// authed marks a request as coming with a verified client certificate.
// authed makes r look like it came over TLS from the apiserver's kubelet client.
func authed(r *http.Request) *http.Request {
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: kubeletAPIUser}}
	r.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert}}}
	return r
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func TestKubeletAPINeedsClientCA(t *testing.T) {
	env := newTestEnv(t, nil, testPod("web", "uid-1"))
	h := env.agent.kubeletHandler()
	if rec := serve(h, httptest.NewRequest("GET", "/healthz", nil)); rec.Code != http.StatusOK {
		t.Errorf("/healthz: %d", rec.Code)
	}
	if rec := serve(h, authed(httptest.NewRequest("GET", "/containerLogs/default/web/nginx", nil))); rec.Code != http.StatusForbidden {
		t.Errorf("logs without a client CA configured: %d, want 403", rec.Code)
	}
}

func TestContainerLogs(t *testing.T) {
	env := newTestEnv(t, nil, testPod("web", "uid-1"))
	env.agent.cfg.ClientCAFile, _ = testCA(t) // requests below are authenticated by authed()
	env.start()
	env.eventually("pod running", func() bool { return runningWithIP(env.getPod("web")) })
	// The status the informer holds must carry the container ID.
	env.eventually("informer has the status", func() bool {
		for _, p := range env.agent.source.list() {
			if len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].ContainerID != "" {
				return true
			}
		}
		return false
	})
	logPath := filepath.Join(env.agent.podLogDir(env.getPod("web")), "nginx", "0.log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		t.Fatal(err)
	}
	log := "2026-11-28T19:00:00.000000001Z stdout F one\n" +
		"2026-11-28T19:00:01.000000000Z stderr P tw\n" +
		"2026-11-28T19:00:01.000000000Z stderr F o\n" +
		"2026-11-28T19:00:02.000000000Z stdout F three\n"
	if err := os.WriteFile(logPath, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	h := env.agent.kubeletHandler()
	for query, want := range map[string]string{
		"":                                "one\ntwo\nthree\n",
		"?tailLines=3":                    "two\nthree\n", // file lines, partial ones included, like kubelet
		"?tailLines=0":                    "",
		"?limitBytes=5":                   "one\nt",
		"?timestamps=true&tailLines=1":    "2026-11-28T19:00:02.000000000Z three\n",
		"?sinceTime=2026-11-28T19:00:01Z": "two\nthree\n",
	} {
		rec := serve(h, authed(httptest.NewRequest("GET", "/containerLogs/default/web/nginx"+query, nil)))
		if rec.Code != http.StatusOK || rec.Body.String() != want {
			t.Errorf("logs%s: %d %q, want %q", query, rec.Code, rec.Body.String(), want)
		}
	}
	rec := serve(h, authed(httptest.NewRequest("GET", "/containerLogs/default/web/nginx?previous=true", nil)))
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "previous terminated container") {
		t.Errorf("previous logs of a first instance: %d %q", rec.Code, rec.Body.String())
	}
	if rec := serve(h, authed(httptest.NewRequest("GET", "/containerLogs/default/nope/nginx", nil))); rec.Code != http.StatusNotFound {
		t.Errorf("logs of an unknown pod: %d", rec.Code)
	}
}

func TestExecProxiesToRuntimeStreamingServer(t *testing.T) {
	env := newTestEnv(t, nil, testPod("web", "uid-1"))
	env.agent.cfg.ClientCAFile, _ = testCA(t)
	streaming := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "streamed "+r.URL.Path)
	}))
	defer streaming.Close()
	rt := &execRuntime{RuntimeService: env.runtime, url: streaming.URL + "/exec/token123", reqs: make(chan *runtimeapi.ExecRequest, 1)}
	env.agent.cfg.Runtime = rt
	env.start()
	env.eventually("pod running", func() bool { return runningWithIP(env.getPod("web")) })

	h := env.agent.kubeletHandler()
	rec := serve(h, authed(httptest.NewRequest("POST", "/exec/default/web/nginx?command=ls&command=-l&output=1&error=1", nil)))
	if rec.Code != http.StatusOK || rec.Body.String() != "streamed /exec/token123" {
		t.Fatalf("exec: %d %q", rec.Code, rec.Body.String())
	}
	got := <-rt.reqs
	if strings.Join(got.Cmd, " ") != "ls -l" || !got.Stdout || !got.Stderr || got.Stdin || got.Tty {
		t.Errorf("exec request %+v", got)
	}
}

// execRuntime answers Exec with the URL of a stand-in streaming server.
type execRuntime struct {
	internalapi.RuntimeService
	url  string
	reqs chan *runtimeapi.ExecRequest
}

func (r *execRuntime) Exec(_ context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	r.reqs <- req
	return &runtimeapi.ExecResponse{Url: r.url}, nil
}

// TestKubeletAPIPods: /pods lists the node's pods with the status the agent wrote, for
// authenticated callers only.
func TestKubeletAPIPods(t *testing.T) {
	env := newTestEnv(t, nil, testPod("web", "uid-1"), testPod("api", "uid-2"))
	env.agent.cfg.ClientCAFile, _ = testCA(t) // requests below are authenticated by authed()
	env.start()
	h := env.agent.kubeletHandler()
	if rec := serve(h, httptest.NewRequest("GET", "/pods", nil)); rec.Code != http.StatusForbidden {
		t.Errorf("/pods without a client certificate: %d", rec.Code)
	}
	env.eventually("both pods Running in /pods", func() bool {
		rec := serve(h, authed(httptest.NewRequest("GET", "/pods", nil)))
		var list v1.PodList
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &list) != nil {
			t.Fatalf("/pods: %d %s", rec.Code, rec.Body.String())
		}
		if list.Kind != "PodList" || len(list.Items) != 2 {
			return false // the informer is still filling
		}
		if list.Items[0].Name != "api" || list.Items[1].Name != "web" {
			t.Fatalf("/pods items not sorted by name: %s, %s", list.Items[0].Name, list.Items[1].Name)
		}
		return list.Items[0].Status.Phase == v1.PodRunning && list.Items[1].Status.Phase == v1.PodRunning
	})
}

// TestKubeletAPIProfiles: the agent's heap profile for authenticated callers; an unknown
// profile is a 404.
func TestKubeletAPIProfiles(t *testing.T) {
	env := newTestEnv(t, nil)
	env.agent.cfg.ClientCAFile, _ = testCA(t)
	h := env.agent.kubeletHandler()
	if rec := serve(h, httptest.NewRequest("GET", "/debug/pprof/heap", nil)); rec.Code != http.StatusForbidden {
		t.Errorf("heap profile without a client certificate: %d", rec.Code)
	}
	rec := serve(h, authed(httptest.NewRequest("GET", "/debug/pprof/heap", nil)))
	// A pprof profile is gzipped protobuf.
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Body.String(), "\x1f\x8b") {
		t.Errorf("heap profile: %d, %d bytes", rec.Code, rec.Body.Len())
	}
	if rec := serve(h, authed(httptest.NewRequest("GET", "/debug/pprof/nothing", nil))); rec.Code != http.StatusNotFound {
		t.Errorf("unknown profile: %d", rec.Code)
	}
}
