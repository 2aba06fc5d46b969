package cri

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	utilexec "k8s.io/utils/exec"
)

// runBusyboxPod pulls busybox, runs a sandbox and starts one container in it with
// the given config (image and metadata defaulted). It returns the sandbox and
// container IDs.
func (e *testEnv) runBusyboxPod(name string, ctr *runtimeapi.ContainerConfig) (string, string) {
	e.t.Helper()
	if _, err := e.img.PullImage(e.ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "busybox"}}); err != nil {
		e.t.Fatalf("PullImage: %v", err)
	}
	pod := podConfig(name, filepath.Join(e.dir, "logs", name))
	pod.PortMappings = nil
	run, err := e.rt.RunPodSandbox(e.ctx, &runtimeapi.RunPodSandboxRequest{Config: pod})
	if err != nil {
		e.t.Fatalf("RunPodSandbox: %v", err)
	}
	if ctr.Metadata == nil {
		ctr.Metadata = &runtimeapi.ContainerMetadata{Name: "main"}
	}
	ctr.Image = &runtimeapi.ImageSpec{Image: "busybox"}
	ctr.LogPath = ctr.Metadata.Name + ".log"
	id := e.createContainer(run.PodSandboxId, pod, ctr)
	e.waitState(id, runtimeapi.ContainerState_CONTAINER_RUNNING)
	return run.PodSandboxId, id
}

// crictlResult runs a crictl command to its end and returns stdout, stderr and the
// exit code, without failing on a non-zero exit.
func crictlResult(t *testing.T, cmd *exec.Cmd) (string, string, int) {
	t.Helper()
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &exitErr):
		return stdout.String(), stderr.String(), exitErr.ExitCode()
	default:
		t.Fatalf("run %v: %v", cmd.Args, err)
		return "", "", -1
	}
}

// TestIntegrationExec runs streaming exec sessions with the stock crictl: separate
// streams with stdin, exit codes, and a TTY with its size.
func TestIntegrationExec(t *testing.T) {
	requireIntegration(t)
	bin := findCrictl(t)
	e := newTestEnv(t)
	e.startRegistry()
	c := e.crictl(bin)
	_, ctr := e.runBusyboxPod("exec", &runtimeapi.ContainerConfig{Command: []string{"sleep", "1000"}})

	// crictl reports a streamed exec's exit code in its error message and exits 1;
	// execExitCode below checks the code itself.
	stdout, stderr, code := crictlResult(t, c.command("exec", "-i", ctr, "sh", "-c", "echo hi; exit 3"))
	if stdout != "hi\n" || code == 0 || !strings.Contains(stderr, "command terminated with exit code 3") {
		t.Errorf("exec 'echo hi; exit 3' = %q, exit %d, stderr %q; want \"hi\\n\" and exit code 3", stdout, code, stderr)
	}

	cmd := c.command("exec", "-i", ctr, "sh", "-c", "read line; echo got:$line; echo oops >&2")
	cmd.Stdin = strings.NewReader("hello\n")
	stdout, stderr, code = crictlResult(t, cmd)
	if stdout != "got:hello\n" || !strings.Contains(stderr, "oops\n") || code != 0 {
		t.Errorf("exec with stdin: stdout %q, stderr %q, exit %d", stdout, stderr, code)
	}

	// The end of the client's input reaches the command.
	cmd = c.command("exec", "-i", ctr, "sh", "-c", "cat; echo done")
	cmd.Stdin = strings.NewReader("a\nb\n")
	if stdout, stderr, code = crictlResult(t, cmd); stdout != "a\nb\ndone\n" || code != 0 {
		t.Errorf("exec cat: stdout %q, stderr %q, exit %d", stdout, stderr, code)
	}

	// The exit code itself, through client-go's SPDY executor as the kubelet's proxy uses it.
	resp, err := e.rt.Exec(e.ctx, &runtimeapi.ExecRequest{ContainerId: ctr, Cmd: []string{"sh", "-c", "echo hi; echo err >&2; exit 3"}, Stdout: true, Stderr: true})
	if err != nil {
		t.Fatalf("Exec: %v", err)
	}
	stdout, stderr, err = streamExec(e, resp.Url, remotecommand.StreamOptions{})
	var exitErr utilexec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitStatus() != 3 || stdout != "hi\n" || stderr != "err\n" {
		t.Errorf("exec 'exit 3' through client-go: stdout %q, stderr %q, err %v; want exit code 3", stdout, stderr, err)
	}
	// The token was used up.
	if _, _, err := streamExec(e, resp.Url, remotecommand.StreamOptions{}); err == nil {
		t.Errorf("a second session with the same exec URL succeeded")
	}

	// crictl wants a terminal for -t: script(1) gives it one, of a known size, which
	// crictl sends as the first resize. A TTY joins stderr into stdout.
	out := underTerminal(t, c.command("exec", "-i", "-t", ctr, "sh", "-c", "tty; stty -a | head -n1; echo to-stderr >&2").Args, "")
	if !regexp.MustCompile(`/dev/pts/\d+\r\n.*rows 33; columns 111;.*\r\nto-stderr\r\n`).MatchString(out) {
		t.Errorf("exec -it under a 33x111 terminal printed %q", out)
	}
}

// streamExec runs one session at an exec or attach URL with client-go's SPDY executor.
func streamExec(e *testEnv, rawURL string, opts remotecommand.StreamOptions) (string, string, error) {
	e.t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		e.t.Fatal(err)
	}
	ex, err := remotecommand.NewSPDYExecutor(&rest.Config{}, http.MethodPost, u)
	if err != nil {
		e.t.Fatal(err)
	}
	var stdout, stderr strings.Builder
	if opts.Stdout == nil {
		opts.Stdout = &stdout
	}
	if opts.Stderr == nil && !opts.Tty {
		opts.Stderr = &stderr
	}
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	err = ex.StreamWithContext(ctx, opts)
	return stdout.String(), stderr.String(), err
}

// underTerminal runs a command line under script(1) on a 33x111 terminal, typing
// input, and returns what the terminal showed.
func underTerminal(t *testing.T, args []string, input string) string {
	t.Helper()
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("script (util-linux) not installed: cannot give crictl a terminal")
	}
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	line := "stty rows 33 cols 111; exec " + strings.Join(quoted, " ")
	cmd := exec.Command(script, "-qec", line, "/dev/null")
	// script forwards its own end of input to the terminal; keep it open until the end.
	stdin, hold, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	defer hold.Close()
	cmd.Stdin = stdin
	if input != "" {
		go func() { _, _ = hold.WriteString(input) }()
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("%s: %v\n%q", line, err, out)
	}
	return string(out)
}

// TestIntegrationExecErrors checks what Exec refuses before handing out a URL.
func TestIntegrationExecErrors(t *testing.T) {
	requireIntegration(t)
	e := newTestEnv(t)
	e.startRegistry()
	_, ctr := e.runBusyboxPod("exec-errors", &runtimeapi.ContainerConfig{Command: []string{"sleep", "1000"}})

	_, err := e.rt.Exec(e.ctx, &runtimeapi.ExecRequest{ContainerId: "nonexistent", Cmd: []string{"true"}, Stdout: true})
	wantCode(t, err, codes.NotFound, "Exec of an unknown container")
	_, err = e.rt.Exec(e.ctx, &runtimeapi.ExecRequest{ContainerId: ctr, Stdout: true})
	wantCode(t, err, codes.InvalidArgument, "Exec without a command")
	_, err = e.rt.Exec(e.ctx, &runtimeapi.ExecRequest{ContainerId: ctr, Cmd: []string{"true"}, Tty: true, Stderr: true})
	wantCode(t, err, codes.InvalidArgument, "Exec with tty and stderr")
	resp, err := e.rt.Exec(e.ctx, &runtimeapi.ExecRequest{ContainerId: ctr[:12], Cmd: []string{"true"}, Stdout: true})
	if err != nil {
		t.Fatalf("Exec by ID prefix: %v", err)
	}
	if !strings.HasPrefix(resp.Url, "http://127.0.0.1:") || !strings.Contains(resp.Url, "/exec/") {
		t.Errorf("Exec URL = %q, want one on the loopback streaming server", resp.Url)
	}
	if _, err := e.rt.StopContainer(e.ctx, &runtimeapi.StopContainerRequest{ContainerId: ctr}); err != nil {
		t.Fatal(err)
	}
	_, err = e.rt.Exec(e.ctx, &runtimeapi.ExecRequest{ContainerId: ctr, Cmd: []string{"true"}, Stdout: true})
	wantCode(t, err, codes.FailedPrecondition, "Exec in a stopped container")
}
