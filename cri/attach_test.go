package cri

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

type failingWriter struct{ writes int }

func (w *failingWriter) Write([]byte) (int, error) {
	w.writes++
	return 0, errors.New("client went away")
}

func TestOutputFanout(t *testing.T) {
	var f outputFanout
	if n, err := f.Write([]byte("nobody listens")); n != 14 || err != nil {
		t.Errorf("Write with no clients = %d, %v", n, err)
	}
	var a, b strings.Builder
	subA := f.add(&a)
	subB := f.add(&b)
	bad := &failingWriter{}
	badSub := f.add(bad)
	if never := f.add(nil); never.failed() != nil { // a session that asked for no such stream
		t.Error("a nil writer got a failure channel")
	}
	_, _ = f.Write([]byte("one "))
	subA.flush(time.Second)
	if n, err := f.Write([]byte("two")); n != 3 || err != nil {
		t.Errorf("Write with a failed client = %d, %v; the log must go on", n, err)
	}
	subB.flush(time.Second)
	if a.String() != "one " || b.String() != "one two" {
		t.Errorf("clients got %q and %q", a.String(), b.String())
	}
	select {
	case <-badSub.failed():
	case <-time.After(5 * time.Second):
		t.Error("a failed client's failure channel is open")
	}
	if bad.writes != 1 {
		t.Errorf("a failed client was written to %d times, want it dropped after 1", bad.writes)
	}
}

// blockedWriter is a client that stopped reading: its writes never return until released.
type blockedWriter struct{ release chan struct{} }

func (w *blockedWriter) Write(p []byte) (int, error) {
	<-w.release
	return len(p), nil
}

// A client that stops reading neither blocks the container's output nor keeps up: it
// is dropped once its queue is full, and the others get everything.
func TestOutputFanoutDropsStalledClient(t *testing.T) {
	var f outputFanout
	stalled := &blockedWriter{release: make(chan struct{})}
	defer close(stalled.release)
	sub := f.add(stalled)
	fine := &ackWriter{got: make(chan struct{})}
	fineSub := f.add(fine)
	written := make(chan struct{})
	go func() {
		defer close(written)
		for range fanoutQueueLen + 10 {
			_, _ = f.Write([]byte("x"))
			<-fine.got // the reading client keeps up
		}
	}()
	select {
	case <-written:
	case <-time.After(5 * time.Second):
		t.Fatal("a stalled client blocked the output")
	}
	select {
	case <-sub.failed():
	default:
		t.Error("a stalled client was not dropped")
	}
	fineSub.flush(5 * time.Second)
	if fine.n != fanoutQueueLen+10 {
		t.Errorf("the reading client got %d bytes, want %d", fine.n, fanoutQueueLen+10)
	}
}

// ackWriter counts what it gets and says so after each write.
type ackWriter struct {
	n   int
	got chan struct{}
}

func (w *ackWriter) Write(p []byte) (int, error) {
	w.n += len(p)
	w.got <- struct{}{}
	return len(p), nil
}

// TestIntegrationAttach attaches the stock crictl to a container's main process:
// separate streams with stdin_once, then a TTY.
func TestIntegrationAttach(t *testing.T) {
	requireIntegration(t)
	bin := findCrictl(t)
	e := newTestEnv(t)
	e.startRegistry()
	c := e.crictl(bin)

	script := `echo started; while read line; do echo "out:$line"; echo "err:$line" >&2; done; echo bye`
	_, ctr := e.runBusyboxPod("attach", &runtimeapi.ContainerConfig{
		Command: []string{"sh", "-c", script}, Stdin: true, StdinOnce: true})
	logPath := filepath.Join(e.dir, "logs", "attach", "main.log")
	waitFileContains(t, logPath, "stdout F started\n")

	// With stdin_once, crictl's end of input closes the container's stdin: the loop
	// ends, the container exits, and so does the attach session.
	cmd := c.command("attach", "-i", ctr)
	cmd.Stdin = strings.NewReader("one\ntwo\n")
	stdout, stderr, code := crictlResult(t, cmd)
	if stdout != "out:one\nout:two\nbye\n" || !strings.Contains(stderr, "err:one\nerr:two\n") || code != 0 {
		t.Errorf("attach -i: stdout %q, stderr %q, exit %d", stdout, stderr, code)
	}
	if st := e.waitState(ctr, runtimeapi.ContainerState_CONTAINER_EXITED); st.ExitCode != 0 {
		t.Errorf("container exited with %d after its stdin closed", st.ExitCode)
	}
	// The log saw the same stream as the attached client.
	waitFileContains(t, logPath, "stdout F out:two\n", "stderr F err:one\n", "stdout F bye\n")

	_, err := e.rt.Attach(e.ctx, &runtimeapi.AttachRequest{ContainerId: ctr, Stdout: true})
	wantCode(t, err, codes.FailedPrecondition, "Attach to an exited container")
}

// TestIntegrationAttachTTY attaches to an interactive shell on a TTY and types into it.
func TestIntegrationAttachTTY(t *testing.T) {
	requireIntegration(t)
	bin := findCrictl(t)
	e := newTestEnv(t)
	e.startRegistry()
	c := e.crictl(bin)
	_, ctr := e.runBusyboxPod("attach-tty", &runtimeapi.ContainerConfig{
		Command: []string{"sh"}, Stdin: true, StdinOnce: true, Tty: true})

	out := underTerminal(t, c.command("attach", "-i", "-t", ctr).Args, "echo sum=$((40+2)); stty -a | head -n1; exit 7\n")
	if !strings.Contains(out, "sum=42\r\n") || !strings.Contains(out, "rows 33; columns 111;") {
		t.Errorf("attach -it printed %q", out)
	}
	if st := e.waitState(ctr, runtimeapi.ContainerState_CONTAINER_EXITED); st.ExitCode != 7 {
		t.Errorf("shell exited with %d, want 7", st.ExitCode)
	}
}

// TestIntegrationAttachAfterRestart attaches to a container started by a previous
// server: its stdin and output FIFOs are re-opened, and its stdin stayed open across
// the restart.
func TestIntegrationAttachAfterRestart(t *testing.T) {
	requireIntegration(t)
	bin := findCrictl(t)
	e := newTestEnv(t)
	e.startRegistry()
	_, ctr := e.runBusyboxPod("attach-restart", &runtimeapi.ContainerConfig{
		Command: []string{"sh", "-c", `while read line; do echo "out:$line"; done; echo bye`}, Stdin: true, StdinOnce: true})
	e.stopServer()
	e.startServer()
	c := e.crictl(bin)

	cmd := c.command("attach", "-i", ctr)
	cmd.Stdin = strings.NewReader("after-restart\n")
	stdout, stderr, code := crictlResult(t, cmd)
	if stdout != "out:after-restart\nbye\n" || code != 0 {
		t.Errorf("attach -i after a restart: stdout %q, stderr %q, exit %d", stdout, stderr, code)
	}
	e.waitState(ctr, runtimeapi.ContainerState_CONTAINER_EXITED)
}
