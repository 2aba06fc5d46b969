package cri

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/klog/v2/ktesting"
)

// TestStartContainerdAdoptsRunningDaemon: a skiff killed with -9 leaves its containerd
// running; the next start must take that daemon over instead of starting a second one on
// the same root, and Stop must then stop it.
func TestStartContainerdAdoptsRunningDaemon(t *testing.T) {
	requireIntegration(t)
	_, ctx := ktesting.NewTestContext(t)
	dir, err := os.MkdirTemp("", "skctrd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg := ContainerdConfig{
		Address: filepath.Join(dir, "ctrd.sock"),
		Root:    filepath.Join(dir, "root"),
		State:   filepath.Join(dir, "state"),
	}
	first, err := StartContainerd(ctx, cfg)
	if err != nil {
		t.Fatalf("first start: %v", err)
	}
	t.Cleanup(func() { _ = first.Stop(context.Background()) })

	// The first owner "dies" without stopping it; a new start adopts the same process.
	second, err := StartContainerd(ctx, cfg)
	if err != nil {
		t.Fatalf("second start: %v", err)
	}
	if second.process.Pid != first.process.Pid {
		t.Fatalf("second start runs containerd pid %d, want the running pid %d adopted", second.process.Pid, first.process.Pid)
	}
	stopCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := second.Stop(stopCtx); err != nil {
		t.Fatalf("stopping the adopted daemon: %v", err)
	}
	select {
	case <-first.exited:
	case <-stopCtx.Done():
		t.Fatal("the adopted containerd did not exit after Stop")
	}
	if err := probeContainerd(ctx, cfg.Address); err == nil {
		t.Fatal("containerd still answers after Stop")
	}

	// With the daemon gone the pid file is stale: a start must run a new daemon.
	third, err := StartContainerd(ctx, cfg)
	if err != nil {
		t.Fatalf("third start: %v", err)
	}
	defer third.Stop(context.Background())
	if third.process.Pid == first.process.Pid {
		t.Fatal("third start adopted a daemon that had exited")
	}
}
