//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCRIKill9Restart kills `skiff cri` with SIGKILL and starts it again: crictl must list
// the same sandbox and containers, in the same states, with the exit code of the container
// that finished and the same log paths, and the running container must keep running.
func TestCRIKill9Restart(t *testing.T) {
	registryConfig := startMirror(t, requireEnv(t, "SKIFF_IMAGES"))
	n := newNode(t, registryConfig)
	c := &crictlClient{t: t, bin: requireEnv(t, "CRICTL"), endpoint: "unix://" + filepath.Join(n.runDir, "cri.sock")}
	startCRI(t, n)

	dir := t.TempDir()
	sandboxConfig := writeJSON(t, dir, "sandbox.json", map[string]any{
		"metadata":      map[string]any{"name": "kill9", "namespace": "e2e", "uid": "kill9-uid", "attempt": 0},
		"log_directory": filepath.Join(dir, "logs"),
		"linux":         map[string]any{},
	})
	container := func(name string, command ...string) string {
		return writeJSON(t, dir, name+".json", map[string]any{
			"metadata": map[string]any{"name": name},
			"image":    map[string]any{"image": "docker.io/library/nginx:latest"},
			"command":  command,
			"log_path": name + ".log",
			"linux":    map[string]any{},
		})
	}
	c.run("pull", "docker.io/library/nginx:latest")
	pod := c.run("runp", sandboxConfig)
	t.Cleanup(func() { c.quiet("stopp", pod); c.quiet("rmp", pod) })
	runner := c.run("create", pod, container("runner", "sleep", "3600"), sandboxConfig)
	quitter := c.run("create", pod, container("quitter", "sh", "-c", "echo bye; exit 3"), sandboxConfig)
	c.run("start", runner)
	c.run("start", quitter)
	waitUntil(t, "quitter exited", 2*time.Minute, func() (bool, error) {
		return c.status(quitter).State == "CONTAINER_EXITED", nil
	})
	before := map[string]criStatus{runner: c.status(runner), quitter: c.status(quitter)}
	pid := c.pid(runner)

	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-n.done
	n.cmd = nil
	startCRI(t, n)

	if got := c.run("pods", "-q"); got != pod {
		t.Errorf("after the restart crictl pods lists %q, want %q", got, pod)
	}
	for id, was := range before {
		if now := c.status(id); now != was {
			t.Errorf("container %s: %+v before the kill, %+v after", id, was, now)
		}
	}
	if got := c.status(quitter); got.ExitCode != 3 {
		t.Errorf("quitter exit code %d after the restart, want 3", got.ExitCode)
	}
	if now := c.pid(runner); now != pid {
		t.Errorf("runner's process is %d after the restart, was %d: it did not keep running", now, pid)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Errorf("runner's process %d is gone: %v", pid, err)
	}
}

// startCRI runs `skiff cri` for node n and waits for its socket to answer crictl.
func startCRI(t *testing.T, n *node) {
	t.Helper()
	logFile, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	n.cmd = exec.Command(n.bin, append([]string{"cri"}, n.flags()...)...)
	n.cmd.Stdout, n.cmd.Stderr = logFile, logFile
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := n.cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("starting skiff cri: %v", err)
	}
	n.done = make(chan error, 1)
	go func() { n.done <- n.cmd.Wait(); logFile.Close() }()
	c := &crictlClient{t: t, bin: requireEnv(t, "CRICTL"), endpoint: "unix://" + filepath.Join(n.runDir, "cri.sock")}
	waitUntil(t, "skiff cri answering", 2*time.Minute, func() (bool, error) {
		_, err := c.quiet("version")
		return err == nil, nil
	})
}

// criStatus is what must survive a restart of the CRI server.
type criStatus struct {
	State    string `json:"state"`
	ExitCode int32  `json:"exitCode"`
	LogPath  string `json:"logPath"`
	Started  string `json:"startedAt"`
	Finished string `json:"finishedAt"`
}

type crictlClient struct {
	t        *testing.T
	bin      string
	endpoint string
}

func (c *crictlClient) quiet(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, c.bin, append([]string{"--runtime-endpoint", c.endpoint, "--image-endpoint", c.endpoint}, args...)...).Output()
	return strings.TrimSpace(string(out)), err
}

func (c *crictlClient) run(args ...string) string {
	c.t.Helper()
	out, err := c.quiet(args...)
	if err != nil {
		var stderr string
		if exitErr, ok := err.(*exec.ExitError); ok {
			stderr = string(exitErr.Stderr)
		}
		c.t.Fatalf("crictl %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return out
}

func (c *crictlClient) inspect(id string) map[string]json.RawMessage {
	c.t.Helper()
	var doc map[string]json.RawMessage
	if err := json.Unmarshal([]byte(c.run("inspect", "-o", "json", id)), &doc); err != nil {
		c.t.Fatalf("crictl inspect %s: %v", id, err)
	}
	return doc
}

func (c *crictlClient) status(id string) criStatus {
	c.t.Helper()
	var s criStatus
	if err := json.Unmarshal(c.inspect(id)["status"], &s); err != nil {
		c.t.Fatalf("crictl inspect %s: status: %v", id, err)
	}
	return s
}

// pid is the container's main process as the runtime reports it in its verbose info.
func (c *crictlClient) pid(id string) int {
	c.t.Helper()
	var info struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal(c.inspect(id)["info"], &info); err != nil || info.Pid == 0 {
		c.t.Fatalf("crictl inspect %s: no pid in the verbose info (%v)", id, err)
	}
	return info.Pid
}

func writeJSON(t *testing.T, dir, name string, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
