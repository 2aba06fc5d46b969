package cri

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestIntegrationPortForward forwards a local port to busybox httpd in a pod with the
// stock crictl and fetches a page through it.
func TestIntegrationPortForward(t *testing.T) {
	requireIntegration(t)
	bin := findCrictl(t)
	e := newTestEnv(t)
	e.startRegistry()
	c := e.crictl(bin)
	pod, _ := e.runBusyboxPod("pf", &runtimeapi.ContainerConfig{
		Command: []string{"busybox", "httpd", "-f", "-p", "80", "-h", "/etc"}})

	port := freePort(t)
	var stderr strings.Builder
	cmd := c.command("port-forward", pod, fmt.Sprintf("%d:80", port))
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	// Each GET is its own forwarded connection.
	for i := range 3 {
		body, err := getWithRetry(fmt.Sprintf("http://127.0.0.1:%d/hostname", port), 15*time.Second)
		if err != nil || body != "pf\n" {
			t.Fatalf("GET %d through crictl port-forward = %q, %v; crictl said:\n%s", i, body, err, stderr.String())
		}
	}

	_, err := e.rt.PortForward(e.ctx, &runtimeapi.PortForwardRequest{PodSandboxId: "nonexistent", Port: []int32{80}})
	wantCode(t, err, codes.NotFound, "PortForward to an unknown sandbox")
}

// TestIntegrationPortForwardClosedPort checks that a port nobody listens on in the
// pod fails that connection, not the pod.
func TestIntegrationPortForwardClosedPort(t *testing.T) {
	requireIntegration(t)
	bin := findCrictl(t)
	e := newTestEnv(t)
	e.startRegistry()
	c := e.crictl(bin)
	pod, _ := e.runBusyboxPod("pf-closed", &runtimeapi.ContainerConfig{Command: []string{"sleep", "1000"}})

	port := freePort(t)
	var stderr strings.Builder
	cmd := c.command("port-forward", pod, fmt.Sprintf("%d:81", port))
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	var conn net.Conn
	deadline := time.Now().Add(15 * time.Second)
	for {
		var err error
		if conn, err = net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("crictl port-forward never listened: %v\n%s", err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := conn.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("read through a forward to a closed port = %d, %v; want the connection closed", n, err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for !strings.Contains(stderr.String(), "connection refused") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(stderr.String(), "connection refused") {
		t.Errorf("crictl was not told why the forward failed:\n%s", stderr.String())
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// getWithRetry GETs url until it answers (the forwarder may not listen yet).
func getWithRetry(url string, timeout time.Duration) (string, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := client.Get(url)
		if err == nil {
			data, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			return string(data), err
		}
		if time.Now().After(deadline) {
			return "", err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
