package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

func TestRunServesUntilCancelled(t *testing.T) {
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	hostsDir := t.TempDir()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, "127.0.0.1:0", []string{"docker.io/library/nginx:latest=" + dir}, []string{"gcr.io"}, hostsDir)
	}()

	deadline := time.Now().Add(10 * time.Second)
	for _, h := range []string{"docker.io", "gcr.io"} {
		f := filepath.Join(hostsDir, h, "hosts.toml")
		for {
			b, err := os.ReadFile(f)
			if err == nil && strings.Contains(string(b), `capabilities = ["pull", "resolve"]`) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not written: %v", f, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}

	if err := run(context.Background(), "127.0.0.1:0", []string{"no-equals-sign"}, nil, ""); err == nil {
		t.Error("run accepted a malformed --image")
	}
}
