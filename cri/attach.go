package cri

import (
	"context"
	"fmt"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// Attach hands out a streaming URL for attaching to a running container's main process.
func (s *service) Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	c, err := s.store.container(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	if st := c.Status().State; st != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return nil, fmt.Errorf("container %s is %s, not running: %w", c.meta.ID, st, errdefs.ErrFailedPrecondition)
	}
	req = proto.CloneOf(req)
	req.ContainerId = c.meta.ID
	return s.stream.handler.GetAttach(req)
}

// attachFlushTimeout bounds how long an attach session that saw its container exit
// waits for the client to take the output still queued for it.
const attachFlushTimeout = 10 * time.Second

// attachStream runs one attach session until the container exits (its output is
// then fully delivered), the client goes away, or a stdin-only client ends its input.
//
// Output comes from the same reads that feed the container log, so an attached client
// and the log see the same bytes. Stdin reaches the container only if it was created
// with stdin; with stdin_once, the first client's end of input closes it for good.
func (s *service) attachStream(ctx context.Context, id string, st streams) error {
	ctx = s.ns(ctx)
	c, err := s.store.container(id)
	if err != nil {
		return err
	}
	c.mu.Lock()
	logs, exited := c.logs, c.exited
	c.mu.Unlock()
	if logs == nil || exited == nil {
		return fmt.Errorf("container %s is not running: %w", c.meta.ID, errdefs.ErrFailedPrecondition)
	}
	logger := klog.FromContext(ctx).WithValues("containerID", c.meta.ID)
	cfg := c.meta.config
	if st.out == nil && st.err == nil && !cfg.GetStdin() {
		return fmt.Errorf("container %s was not created with stdin, and no output was asked for: %w", c.meta.ID, errdefs.ErrInvalidArgument)
	}

	out := logs.stdout.add(st.out)
	defer out.remove()
	var errOut *fanoutSub
	if !cfg.GetTty() {
		errOut = logs.stderr.add(st.err)
		defer errOut.remove()
	}
	task, err := s.task(ctx, c.meta.ID)
	if err != nil {
		return err
	}
	if cfg.GetTty() && st.resize != nil {
		resizeCtx, stopResize := context.WithCancel(ctx)
		defer stopResize()
		go resizeLoop(resizeCtx, st.resize, task.Resize)
	}
	stdinDone := make(chan struct{})
	if st.in != nil && cfg.GetStdin() {
		var closeStdin func()
		if cfg.GetStdinOnce() {
			closeStdin = func() { s.closeStdin(ctx, logs, task) }
		}
		go func() {
			defer close(stdinDone)
			if err := logs.writeStdin(st.in, closeStdin); err != nil {
				logger.V(4).Info("Attach stdin ended", "err", err)
			}
		}()
	}
	// A client that only sends input is done when its input is.
	var inputOnly <-chan struct{}
	if st.out == nil && st.err == nil {
		inputOnly = stdinDone
	}
	// A hijacked connection's context does not end with the connection: a failed
	// write is how a vanished client shows.
	select {
	case <-exited:
		// The output before the exit reaches a client that still reads.
		out.flush(attachFlushTimeout)
		errOut.flush(attachFlushTimeout)
		return nil
	case <-inputOnly:
		return nil
	case <-out.failed():
		return fmt.Errorf("attach to container %s: client stopped reading stdout", c.meta.ID)
	case <-errOut.failed():
		return fmt.Errorf("attach to container %s: client stopped reading stderr", c.meta.ID)
	case <-ctx.Done():
		return fmt.Errorf("attach to container %s ended: %w", c.meta.ID, ctx.Err())
	}
}

// closeStdin ends the container's input for good. Closing our end of the FIFO is not
// enough: the shim holds the FIFO open itself, so it must be told to close the
// process's stdin.
func (s *service) closeStdin(ctx context.Context, logs *containerLog, task containerd.Task) {
	logs.closeStdin()
	if err := task.CloseIO(context.WithoutCancel(ctx), containerd.WithStdinCloser); err != nil && !errdefs.IsNotFound(err) {
		klog.FromContext(ctx).V(2).Info("Close container stdin", "containerID", task.ID(), "err", err)
	}
}

// task loads the task of a container.
func (s *service) task(ctx context.Context, id string) (containerd.Task, error) {
	cc, err := s.client.LoadContainer(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("load container: %w", err)
	}
	task, err := cc.Task(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("load task of %s: %w", id, err)
	}
	return task, nil
}
