package cri

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestIntegrationCrictl drives the server with the stock crictl (go install
// sigs.k8s.io/cri-tools/cmd/crictl@v1.37.0; set CRICTL to its path if not on PATH).
func TestIntegrationCrictl(t *testing.T) {
	requireIntegration(t)
	crictl := os.Getenv("CRICTL")
	if crictl == "" {
		var err error
		if crictl, err = exec.LookPath("crictl"); err != nil {
			t.Skip("crictl not installed (go install sigs.k8s.io/cri-tools/cmd/crictl@v1.37.0, or set CRICTL)")
		}
	}
	e := newTestEnv(t)
	e.startRegistry()
	configFile := filepath.Join(e.dir, "crictl.yaml")
	crictlConfig := "runtime-endpoint: unix://" + e.socket + "\nimage-endpoint: unix://" + e.socket + "\n"
	if err := os.WriteFile(configFile, []byte(crictlConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		full := append([]string{"--config", configFile, "--timeout", "20s"}, args...)
		var stderr strings.Builder
		cmd := exec.Command(crictl, full...)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("crictl %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
		}
		return strings.TrimSpace(string(out))
	}
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
	run("stop", "--timeout", "1", ctr)
	run("rm", ctr)
	run("stopp", pod)
	run("rmp", pod)
	run("rmi", "busybox")
	if out := run("pods", "-q"); out != "" {
		t.Errorf("pods left: %q", out)
	}
}
