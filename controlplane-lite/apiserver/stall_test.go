package apiserver

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/controlplane-lite/apiserver/registry"
	"github.com/skiff-sh/skiff/controlplane-lite/apiserver/storage"
	"github.com/skiff-sh/skiff/controlplane-lite/etcd"
	"github.com/skiff-sh/skiff/controlplane-lite/etcd/etcdtest"
)

// stallProxy forwards TCP to an etcd until stalled, then holds every byte: an etcd that
// accepts requests and never answers.
type stallProxy struct {
	ln      net.Listener
	target  string
	stalled atomic.Bool
	wg      sync.WaitGroup
}

func startStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, target: target}
	var conns sync.Map
	p.wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			conns.Store(in, out)
			p.wg.Go(func() { p.pipe(out, in) })
			p.wg.Go(func() { p.pipe(in, out) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(in, out any) bool {
			in.(net.Conn).Close()
			out.(net.Conn).Close()
			return true
		})
		p.wg.Wait()
	})
	return p
}

func (p *stallProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for p.stalled.Load() {
			time.Sleep(10 * time.Millisecond)
			if errors.Is(src.SetReadDeadline(time.Time{}), net.ErrClosed) {
				return
			}
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				dst.Close()
			}
			return
		}
	}
}

// TestStalledEtcd: with etcd accepting requests but never answering, a request ends
// with 504 at its deadline and /readyz and /livez report the etcd check failing.
func TestStalledEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded etcd")
	}
	srv, _ := etcdtest.Start(t)
	u, err := url.Parse(srv.Endpoints()[0])
	if err != nil {
		t.Fatal(err)
	}
	proxy := startStallProxy(t, u.Host)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	client, err := etcd.NewClient(ctx, []string{"http://" + proxy.ln.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	defs := registry.Definitions()
	stores := map[schema.GroupResource]storage.Store{}
	for _, d := range defs {
		if stores[d.GroupResource], err = storage.New(ctx, client, d.Resource); err != nil {
			t.Fatal(err)
		}
	}
	s := newTestServerWith(t, func(cfg *Config) {
		cfg.Definitions, cfg.Stores = defs, stores
		cfg.RequestTimeout = time.Second
		cfg.HealthChecks = []HealthCheck{{Name: "etcd", Check: func(ctx context.Context) error {
			_, err := client.Get(ctx, "health", clientv3.WithCountOnly())
			return err
		}}}
	})
	lease := "/apis/coordination.k8s.io/v1/namespaces/default/leases/x"
	expectCode(t, s.do(t, http.MethodGet, "/readyz", ""), http.StatusOK)
	expectCode(t, s.do(t, http.MethodGet, lease, ""), http.StatusNotFound)

	proxy.stalled.Store(true)
	start := time.Now()
	resp := s.do(t, http.MethodGet, lease, "")
	expectCode(t, resp, http.StatusGatewayTimeout)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the request took %v with a 1s timeout", d)
	}
	resp = s.do(t, http.MethodGet, lease+"?timeout=200ms", "")
	expectCode(t, resp, http.StatusGatewayTimeout)
	for _, path := range []string{"/readyz", "/livez", "/readyz/etcd"} {
		resp = s.do(t, http.MethodGet, path, "")
		expectCode(t, resp, http.StatusInternalServerError)
		if !strings.Contains(string(resp.body), "[-]etcd failed") {
			t.Errorf("%s body %q, want the etcd check failing", path, resp.body)
		}
	}
}
