package etcd_test

import (
	"context"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/skiff-sh/skiff/controlplane-lite/etcd"
	"github.com/skiff-sh/skiff/controlplane-lite/etcd/etcdtest"
)

func TestRestartKeepsData(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "etcd")
	cfg := etcd.Config{DataDir: dir, ClientPort: etcdtest.FreePort(t), PeerPort: etcdtest.FreePort(t)}

	srv, err := etcd.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := srv.Endpoints(), "http://127.0.0.1:"+strconv.Itoa(cfg.ClientPort); len(got) != 1 || got[0] != want {
		t.Fatalf("Endpoints() = %v, want [%s]", got, want)
	}
	c, err := etcd.NewClient(ctx, []string{"127.0.0.1:" + strconv.Itoa(cfg.ClientPort)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "/registry/test/a", "hello"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil { // a second Close is harmless
		t.Fatal(err)
	}

	srv, err = etcd.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer srv.Close()
	c, err = etcd.NewClient(ctx, srv.Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, err := c.Get(ctx, "/registry/test/a")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "hello" {
		t.Fatalf("after restart got %v, want the value written before", resp.Kvs)
	}
}

func TestPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port

	srv, err := etcd.Start(context.Background(), etcd.Config{DataDir: t.TempDir(), ClientPort: port, PeerPort: etcdtest.FreePort(t)})
	if err == nil {
		srv.Close()
		t.Fatal("Start succeeded on a taken port")
	}
	if !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("error %q does not say the port is in use", err)
	}
}

func TestNewClientUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3e9)
	defer cancel()
	c, err := etcd.NewClient(ctx, []string{"127.0.0.1:" + strconv.Itoa(etcdtest.FreePort(t))})
	if err == nil {
		c.Close()
		t.Fatal("NewClient succeeded without a server")
	}
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []etcd.Config{
		{},
		{DataDir: t.TempDir(), ClientPort: 5000, PeerPort: 5000},
		{DataDir: t.TempDir(), ClientPort: 70000},
	} {
		if srv, err := etcd.Start(context.Background(), cfg); err == nil {
			srv.Close()
			t.Errorf("Start(%+v) succeeded, want a validation error", cfg)
		}
	}
}
