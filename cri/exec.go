package cri

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// maxExecOutput caps what ExecSync buffers per stream (the gRPC message limit is 16 MiB).
const maxExecOutput = 8 << 20

// cappedBuffer is a goroutine-safe buffer that drops output past its limit.
type cappedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := maxExecOutput - b.buf.Len(); room > 0 {
		if len(p) > room {
			b.buf.Write(p[:room])
		} else {
			b.buf.Write(p)
		}
	}
	return len(p), nil
}

func (b *cappedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf.Bytes()...)
}

// runningProcess finds a running container's task and the process spec that new
// exec processes start from.
func (s *service) runningProcess(ctx context.Context, id string) (*container, containerd.Task, *specs.Process, error) {
	c, err := s.store.container(id)
	if err != nil {
		return nil, nil, nil, err
	}
	if st := c.Status().State; st != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return nil, nil, nil, fmt.Errorf("container %s is %s, not running: %w", c.meta.ID, st, errdefs.ErrFailedPrecondition)
	}
	cc, err := s.client.LoadContainer(ctx, c.meta.ID)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("load container: %w", err)
	}
	spec, err := cc.Spec(ctx)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("container spec: %w", err)
	}
	if spec.Process == nil {
		return nil, nil, nil, fmt.Errorf("container %s has no process spec: %w", c.meta.ID, errdefs.ErrFailedPrecondition)
	}
	task, err := cc.Task(ctx, nil)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("container %s has no task: %v: %w", c.meta.ID, err, errdefs.ErrFailedPrecondition)
	}
	return c, task, spec.Process, nil
}

// ExecSync runs a command in a running container and returns its output and exit code.
func (s *service) ExecSync(ctx context.Context, req *runtimeapi.ExecSyncRequest) (*runtimeapi.ExecSyncResponse, error) {
	ctx = s.ns(ctx)
	if len(req.GetCmd()) == 0 {
		return nil, fmt.Errorf("exec needs a command: %w", errdefs.ErrInvalidArgument)
	}
	c, task, procSpec, err := s.runningProcess(ctx, req.GetContainerId())
	if err != nil {
		return nil, err
	}
	pspec := *procSpec
	pspec.Args = req.GetCmd()
	pspec.Terminal = false

	// Separate buffers: cio copies both streams concurrently.
	var stdout, stderr cappedBuffer
	execID := newID()[:32]
	proc, err := task.Exec(ctx, execID, &pspec, cio.NewCreator(
		cio.WithStreams(nil, &stdout, &stderr), cio.WithFIFODir(s.fifoDir())))
	if err != nil {
		return nil, fmt.Errorf("exec in container %s: %w", c.meta.ID, err)
	}
	cleanupCtx := context.WithoutCancel(ctx)
	defer func() { _, _ = proc.Delete(cleanupCtx, containerd.WithProcessKill) }()
	exitCh, err := proc.Wait(cleanupCtx)
	if err != nil {
		return nil, fmt.Errorf("wait exec: %w", err)
	}
	if err := proc.Start(ctx); err != nil {
		return nil, fmt.Errorf("start exec: %w", err)
	}
	var timeout <-chan time.Time
	if req.GetTimeout() > 0 {
		timeout = time.After(time.Duration(req.GetTimeout()) * time.Second)
	}
	var st containerd.ExitStatus
	select {
	case st = <-exitCh:
	case <-timeout:
		_ = proc.Kill(cleanupCtx, syscall.SIGKILL)
		<-exitCh
		return nil, fmt.Errorf("command %q timed out after %ds: %w", req.GetCmd(), req.GetTimeout(), context.DeadlineExceeded)
	case <-ctx.Done():
		_ = proc.Kill(cleanupCtx, syscall.SIGKILL)
		<-exitCh
		return nil, ctx.Err()
	}
	// All output must be copied before the process (and its FIFOs) is deleted; a
	// background child that keeps the pipes open must not hold the call past the drain.
	drainIO(proc.IO(), execDrainTimeout)
	return &runtimeapi.ExecSyncResponse{
		Stdout:   stdout.Bytes(),
		Stderr:   stderr.Bytes(),
		ExitCode: int32(st.ExitCode()),
	}, nil
}
