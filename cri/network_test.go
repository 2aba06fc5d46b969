package cri

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-sh/skiff/network"
)

// The real pod network is what the lead wires in.
var _ Network = (*network.Manager)(nil)

// TestIntegrationRealNetwork runs a pod on package network's CNI bridge and fetches a
// page from the pod's IP.
func TestIntegrationRealNetwork(t *testing.T) {
	requireIntegration(t)
	e := newTestEnv(t)
	cidr := e.useRealNetwork()
	ctx := e.ctx
	e.startRegistry()

	if _, err := e.img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "busybox"}}); err != nil {
		t.Fatal(err)
	}
	pod := podConfig("web", "")
	pod.PortMappings = nil
	run, err := e.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pod})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	sb, err := e.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: run.PodSandboxId})
	if err != nil {
		t.Fatal(err)
	}
	ip := sb.Status.Network.Ip
	if _, podNet, _ := net.ParseCIDR(cidr); !podNet.Contains(net.ParseIP(ip)) {
		t.Fatalf("pod IP %q is not in %s", ip, cidr)
	}
	c := e.createContainer(run.PodSandboxId, pod, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "httpd"}, Image: &runtimeapi.ImageSpec{Image: "busybox"},
		Command: []string{"busybox", "httpd", "-f", "-p", "80", "-h", "/etc"}})
	e.waitState(c, runtimeapi.ContainerState_CONTAINER_RUNNING)

	var body string
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + net.JoinHostPort(ip, "80") + "/hostname")
		if err == nil {
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(data)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod at %s never answered: %v", ip, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if body != "web\n" {
		t.Errorf("GET /hostname from the pod = %q", body)
	}
	if _, err := e.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: run.PodSandboxId}); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(e.dir, "netns")); len(entries) != 0 {
		t.Errorf("netns left after RemovePodSandbox: %v", entries)
	}
}

// useRealNetwork restarts the env's server on package network's CNI bridge (own bridge,
// network name, netns dir and a random pod CIDR) and returns the CIDR.
func (e *testEnv) useRealNetwork() string {
	t := e.t
	if _, err := os.Stat(filepath.Join(network.DefaultBinDir, "bridge")); err != nil {
		t.Skipf("CNI plugins not installed (apt package containernetworking-plugins): %v", err)
	}
	e.stopServer()
	suffix := fmt.Sprintf("%04x", rand.IntN(1<<16))
	m, err := network.New(network.Config{
		StateDir:    filepath.Join(e.dir, "net"),
		NetnsDir:    filepath.Join(e.dir, "netns"),
		BridgeName:  "skcri" + suffix,
		NetworkName: "skcri-" + suffix,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Pods first: CNI DEL needs the network's config.
		if e.srv != nil {
			e.removeAllPods()
		}
		if err := m.Cleanup(context.Background()); err != nil {
			t.Errorf("network cleanup: %v", err)
		}
	})
	e.cfg.Network = m
	e.startServer()
	cidr := fmt.Sprintf("10.213.%d.0/24", rand.IntN(250))
	if _, err := e.rt.UpdateRuntimeConfig(e.ctx, &runtimeapi.UpdateRuntimeConfigRequest{RuntimeConfig: &runtimeapi.RuntimeConfig{
		NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: cidr}}}); err != nil {
		t.Fatal(err)
	}
	return cidr
}

// removeAllPods talks to the service directly: the test's gRPC connection may be closed.
func (e *testEnv) removeAllPods() {
	ctx := e.ctx
	list, err := e.srv.svc.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		e.t.Errorf("list pods for cleanup: %v", err)
		return
	}
	for _, sb := range list.Items {
		if _, err := e.srv.svc.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			e.t.Errorf("remove pod %s: %v", sb.Id, err)
		}
	}
}
