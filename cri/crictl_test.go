package cri

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// crictl runs the stock crictl against a test env's socket.
type crictl struct {
	t      *testing.T
	bin    string
	config string
}

// findCrictl returns the crictl to test with (go install
// sigs.k8s.io/cri-tools/cmd/crictl@v1.37.0; set CRICTL to its path if not on PATH),
// or skips the test.
func findCrictl(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("CRICTL"); bin != "" {
		return bin
	}
	bin, err := exec.LookPath("crictl")
	if err != nil {
		t.Skip("crictl not installed (go install sigs.k8s.io/cri-tools/cmd/crictl@v1.37.0, or set CRICTL)")
	}
	return bin
}

// crictl writes a crictl config for the env's socket.
func (e *testEnv) crictl(bin string) *crictl {
	configFile := filepath.Join(e.dir, "crictl.yaml")
	config := "runtime-endpoint: unix://" + e.socket + "\nimage-endpoint: unix://" + e.socket + "\n"
	if err := os.WriteFile(configFile, []byte(config), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return &crictl{t: e.t, bin: bin, config: configFile}
}

// command builds a crictl command line without running it.
func (c *crictl) command(args ...string) *exec.Cmd {
	full := append([]string{"--config", c.config, "--timeout", "20s"}, args...)
	return exec.Command(c.bin, full...)
}

// run runs crictl and returns its trimmed stdout, failing the test on error.
func (c *crictl) run(args ...string) string {
	c.t.Helper()
	var stderr strings.Builder
	cmd := c.command(args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		c.t.Fatalf("crictl %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// syncBuffer collects a background command's output for polling.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestIntegrationCrictl drives the server with the stock crictl.
func TestIntegrationCrictl(t *testing.T) {
	requireIntegration(t)
	bin := findCrictl(t)
	e := newTestEnv(t)
	e.startRegistry()
	c := e.crictl(bin)
	run := c.run
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(e.dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	logDir := filepath.Join(e.dir, "crictl-logs")
	podFile := write("pod.json", `{"metadata":{"name":"ctl","namespace":"default","uid":"ctl-uid"},"hostname":"ctl","log_directory":"`+logDir+`","linux":{}}`)
	ctrFile := write("ctr.json", `{"metadata":{"name":"main"},"image":{"image":"busybox"},"command":["sh","-c","echo hi from crictl; exec sleep 1000"],"log_path":"main.log","linux":{}}`)

	if out := run("version"); !strings.Contains(out, "RuntimeName:  skiff") {
		t.Errorf("crictl version:\n%s", out)
	}
	if out := run("info"); !strings.Contains(out, `"type": "RuntimeReady"`) {
		t.Errorf("crictl info:\n%s", out)
	}
	run("pull", "busybox")
	if out := run("images"); !strings.Contains(out, "docker.io/library/busybox") || !strings.Contains(out, "registry.k8s.io/pause") {
		t.Errorf("crictl images:\n%s", out)
	}
	pod := run("runp", podFile)
	ctr := run("create", pod, ctrFile, podFile)
	run("start", ctr)
	if out := run("ps"); !strings.Contains(out, ctr[:13]) || !strings.Contains(out, "Running") {
		t.Errorf("crictl ps:\n%s", out)
	}
	if out := run("pods"); !strings.Contains(out, pod[:13]) || !strings.Contains(out, "Ready") {
		t.Errorf("crictl pods:\n%s", out)
	}
	if out := run("exec", "--sync", ctr, "cat", "/etc/hostname"); out != "ctl" {
		t.Errorf("crictl exec = %q", out)
	}
	e.waitState(ctr, 1) // CONTAINER_RUNNING
	waitFileContains(t, filepath.Join(logDir, "main.log"), "stdout F hi from crictl\n")
	if out := run("logs", ctr); out != "hi from crictl" {
		t.Errorf("crictl logs = %q", out)
	}
	if out := run("inspect", ctr); !strings.Contains(out, `"state": "CONTAINER_RUNNING"`) {
		t.Errorf("crictl inspect:\n%s", out)
	}
	if out := run("inspectp", pod); !strings.Contains(out, `"state": "SANDBOX_READY"`) {
		t.Errorf("crictl inspectp:\n%s", out)
	}
	if out := run("imagefsinfo"); !strings.Contains(out, "usedBytes") {
		t.Errorf("crictl imagefsinfo:\n%s", out)
	}
	if out := run("statsp", "-o", "json", "--id", pod); !strings.Contains(out, `"name": "ctl"`) || !strings.Contains(out, `"workingSetBytes"`) {
		t.Errorf("crictl statsp:\n%s", out)
	}
	events := c.command("events")
	var eventsOut syncBuffer
	events.Stdout = &eventsOut
	if err := events.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = events.Process.Kill(); _ = events.Wait() })
	for deadline := time.Now().Add(10 * time.Second); !e.srv.svc.events.active(); {
		if time.Now().After(deadline) {
			t.Fatal("crictl events never subscribed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	run("stop", "--timeout", "1", ctr)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(eventsOut.String(), "CONTAINER_STOPPED_EVENT"); {
		if time.Now().After(deadline) {
			t.Fatalf("crictl events did not show the stop:\n%s", eventsOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(eventsOut.String(), ctr) {
		t.Errorf("crictl events:\n%s", eventsOut.String())
	}
	run("rm", ctr)
	run("stopp", pod)
	run("rmp", pod)
	run("rmi", "busybox")
	if out := run("pods", "-q"); out != "" {
		t.Errorf("pods left: %q", out)
	}
}
