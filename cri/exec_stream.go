package cri

import (
	"context"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/klog/v2"
	utilexec "k8s.io/utils/exec"
)

// execDrainTimeout bounds the wait for an exec's output after it exited: a
// background child that inherited stdout would otherwise hold the session open.
const execDrainTimeout = 5 * time.Second

// initialSizeWait is how long a TTY session waits for the client's terminal size
// before starting the command without one.
const initialSizeWait = 250 * time.Millisecond

// Exec hands out a streaming URL for running a command in a running container.
func (s *service) Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	if len(req.GetCmd()) == 0 {
		return nil, fmt.Errorf("exec needs a command: %w", errdefs.ErrInvalidArgument)
	}
	c, err := s.store.container(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	if st := c.Status().State; st != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return nil, fmt.Errorf("container %s is %s, not running: %w", c.meta.ID, st, errdefs.ErrFailedPrecondition)
	}
	// The session resolves the container again; hand it the full ID, not a prefix.
	req = proto.CloneOf(req)
	req.ContainerId = c.meta.ID
	return s.stream.handler.GetExec(req)
}

// execStream runs one streaming exec session: a new process in the container's task
// wired to the client's streams, killed if the client goes away. A non-zero exit
// comes back as a utilexec.ExitError, which the library reports to the client as the
// exit code (remotecommand v4/v5 status).
func (s *service) execStream(ctx context.Context, id string, cmd []string, st streams) error {
	ctx = s.ns(ctx)
	c, task, procSpec, err := s.runningProcess(ctx, id)
	if err != nil {
		return err
	}
	logger := klog.FromContext(ctx).WithValues("containerID", c.meta.ID)
	pspec := *procSpec
	pspec.Args = cmd
	pspec.Terminal = st.tty
	pspec.ConsoleSize = nil
	initial := firstSize(ctx, st)
	if initial != nil {
		// runc sizes the terminal before the command starts; a resize after Start
		// would race with a command that asks for its size right away.
		pspec.ConsoleSize = &specs.Box{Width: uint(initial.Width), Height: uint(initial.Height)}
	}

	// The shim holds the stdin FIFO open itself: the end of the client's input must be
	// passed on with CloseIO, or a command reading stdin to its end never sees EOF.
	var stdin io.Reader
	stdinEOF := make(chan struct{})
	if st.in != nil {
		stdin = &eofNotifier{r: st.in, eof: stdinEOF}
	}
	opts := []cio.Opt{cio.WithStreams(stdin, st.out, st.err), cio.WithFIFODir(s.fifoDir())}
	if st.tty {
		opts = append(opts, cio.WithTerminal)
	}
	execID := newID()[:32]
	proc, err := task.Exec(ctx, execID, &pspec, cio.NewCreator(opts...))
	if err != nil {
		return fmt.Errorf("exec in container %s: %w", c.meta.ID, err)
	}
	cleanupCtx := context.WithoutCancel(ctx)
	defer func() {
		if _, err := proc.Delete(cleanupCtx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			logger.V(2).Info("Delete exec process", "execID", execID, "err", err)
		}
	}()
	exitCh, err := proc.Wait(cleanupCtx)
	if err != nil {
		return fmt.Errorf("wait exec: %w", err)
	}
	if err := proc.Start(ctx); err != nil {
		return fmt.Errorf("start exec: %w", err)
	}
	// Helpers of this session end with it.
	sessionCtx, endSession := context.WithCancel(ctx)
	defer endSession()
	if initial != nil {
		_ = proc.Resize(ctx, uint32(initial.Width), uint32(initial.Height))
	}
	go resizeLoop(sessionCtx, st.resize, proc.Resize)
	go func() {
		select {
		case <-stdinEOF:
			if err := proc.CloseIO(cleanupCtx, containerd.WithStdinCloser); err != nil && !errdefs.IsNotFound(err) {
				logger.V(2).Info("Close exec stdin", "execID", execID, "err", err)
			}
		case <-sessionCtx.Done():
		}
	}()

	var exit containerd.ExitStatus
	select {
	case exit = <-exitCh:
	case <-ctx.Done():
		// The client went away or the server is shutting down.
		_ = proc.Kill(cleanupCtx, syscall.SIGKILL)
		<-exitCh
		proc.IO().Cancel()
		return fmt.Errorf("exec session in container %s ended: %w", c.meta.ID, ctx.Err())
	}
	if err := exit.Error(); err != nil {
		return fmt.Errorf("wait exec: %w", err)
	}
	drainIO(proc.IO(), execDrainTimeout)
	if code := exit.ExitCode(); code != 0 {
		return utilexec.CodeExitError{Err: fmt.Errorf("command exited with code %d", code), Code: int(code)}
	}
	return nil
}

// eofNotifier closes eof when its reader ends (io.EOF or another error).
type eofNotifier struct {
	r    io.Reader
	eof  chan struct{}
	once sync.Once
}

func (n *eofNotifier) Read(p []byte) (int, error) {
	c, err := n.r.Read(p)
	if err != nil {
		n.once.Do(func() { close(n.eof) })
	}
	return c, err
}

// firstSize waits briefly for the terminal size a TTY client sends right after the
// session opens.
func firstSize(ctx context.Context, st streams) *remotecommand.TerminalSize {
	if !st.tty || st.resize == nil {
		return nil
	}
	select {
	case size, ok := <-st.resize:
		if ok && size.Width > 0 && size.Height > 0 {
			return &size
		}
	case <-time.After(initialSizeWait):
	case <-ctx.Done():
	}
	return nil
}

// drainIO waits until the process's output is copied, at most timeout, then stops
// copying.
func drainIO(pio cio.IO, timeout time.Duration) {
	done := make(chan struct{})
	go func() { pio.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		pio.Cancel()
		<-done
	}
}
