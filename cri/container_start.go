package cri

import (
	"context"
	"fmt"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// StartContainer starts a created container with its output going to the CRI log.
func (s *service) StartContainer(ctx context.Context, req *runtimeapi.StartContainerRequest) (_ *runtimeapi.StartContainerResponse, retErr error) {
	ctx = s.ns(ctx)
	c, err := s.store.container(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.status.State != runtimeapi.ContainerState_CONTAINER_CREATED {
		st := c.status.State
		c.mu.Unlock()
		return nil, fmt.Errorf("container %s is %s, not created: %w", c.meta.ID, st, errdefs.ErrFailedPrecondition)
	}
	// Claim the start so a concurrent StartContainer fails above.
	c.status.State = runtimeapi.ContainerState_CONTAINER_UNKNOWN
	c.mu.Unlock()
	defer func() {
		if retErr != nil {
			c.mu.Lock()
			c.status = containerStatus{State: runtimeapi.ContainerState_CONTAINER_EXITED, ExitCode: startErrorExitCode,
				Reason: reasonStartError, Message: retErr.Error(), FinishedAt: nowNano()}
			c.exited = closedChan()
			c.mu.Unlock()
			_ = s.saveStatus(context.WithoutCancel(ctx), c)
			s.containerEvent(c, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT)
		}
	}()
	if sb, err := s.store.sandbox(c.meta.SandboxID); err != nil || sb.State() != runtimeapi.PodSandboxState_SANDBOX_READY {
		return nil, fmt.Errorf("sandbox %s of container %s is not ready: %w", c.meta.SandboxID, c.meta.ID, errdefs.ErrFailedPrecondition)
	}
	timing := newSteps()
	cc, err := s.client.LoadContainer(ctx, c.meta.ID)
	if err != nil {
		return nil, fmt.Errorf("load container: %w", err)
	}
	logs, err := openContainerLog(c.meta.LogPath, c.meta.config.GetTty(), c.meta.config.GetStdin())
	if err != nil {
		return nil, err
	}
	timing.done("load")
	task, err := cc.NewTask(ctx, logs.creator(s.fifoDir()))
	if err != nil {
		logs.close()
		return nil, fmt.Errorf("create task: %w", err)
	}
	timing.done("taskCreate")
	exitCh, err := task.Wait(s.ns(s.lifetime))
	if err != nil {
		_, _ = task.Delete(context.WithoutCancel(ctx), containerd.WithProcessKill)
		logs.close()
		return nil, fmt.Errorf("wait task: %w", err)
	}
	if err := task.Start(ctx); err != nil {
		_, _ = task.Delete(context.WithoutCancel(ctx), containerd.WithProcessKill)
		logs.close()
		return nil, fmt.Errorf("start task: %w", err)
	}
	timing.done("taskStart")
	c.mu.Lock()
	c.status.State = runtimeapi.ContainerState_CONTAINER_RUNNING
	c.status.Pid = task.Pid()
	c.status.StartedAt = nowNano()
	c.exited = make(chan struct{})
	c.logs = logs
	c.task = task
	c.mu.Unlock()
	s.watchContainer(c, task, exitCh, logs)
	if err := s.saveStatus(ctx, c); err != nil {
		klog.FromContext(ctx).Error(err, "Persist container status")
	}
	timing.done("status")
	s.containerEvent(c, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT)
	klog.FromContext(ctx).V(2).Info("Started container", append([]any{"containerID", c.meta.ID}, timing.keysAndValues()...)...)
	return &runtimeapi.StartContainerResponse{}, nil
}

func closedChan() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}

// watchContainer records the task's exit, drains its output and deletes the task.
func (s *service) watchContainer(c *container, task containerd.Task, exitCh <-chan containerd.ExitStatus, logs *containerLog) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		var st containerd.ExitStatus
		select {
		case <-s.lifetime.Done():
			// The shim keeps the FIFOs open, so the next server re-attaches to them
			// without the container noticing.
			logs.detach()
			return
		case st = <-exitCh:
		}
		ctx := s.ns(s.lifetime)
		logger := klog.FromContext(ctx).WithValues("containerID", c.meta.ID)
		// Output still in the FIFOs belongs in the log; don't wait forever for a
		// daemonized child holding them open.
		if !logs.drain(5 * time.Second) {
			logger.Info("Container output did not drain in time after exit")
		}
		c.mu.Lock()
		deleted := make(chan struct{})
		c.taskDeleted, c.task = deleted, nil
		c.mu.Unlock()
		// The exit is the caller's answer; the task's deletion (`runc delete` in the
		// shim) goes on behind it, as with CRI-O, and RemoveContainer waits for it.
		s.recordExit(ctx, c, st.ExitCode(), st.ExitTime())
		deleteCtx, cancel := s.cleanupContext()
		if _, err := task.Delete(deleteCtx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			logger.Error(err, "Delete exited task")
		}
		cancel()
		logs.close()
		close(deleted)
	}()
}

// recordExit moves the container to EXITED with a reason the kubelet understands.
func (s *service) recordExit(ctx context.Context, c *container, code uint32, at time.Time) {
	if at.IsZero() {
		at = time.Now()
	}
	c.persistMu.Lock()
	defer c.persistMu.Unlock()
	c.mu.Lock()
	st := c.status
	st.State = runtimeapi.ContainerState_CONTAINER_EXITED
	st.Pid = 0
	st.ExitCode = int32(code)
	st.FinishedAt = at.UnixNano()
	switch {
	case c.oomKilled:
		st.Reason = reasonOOMKilled
	case code == 0:
		st.Reason = reasonCompleted
	default:
		st.Reason = reasonError
	}
	c.mu.Unlock()
	// Persisted before anyone can see it: a server killed right after a caller saw the
	// exit comes back with the same exit, not with a task that vanished meanwhile.
	if err := s.persistStatus(ctx, c, st); err != nil {
		klog.FromContext(ctx).Error(err, "Persist container exit")
	}
	c.mu.Lock()
	// An OOM event that arrived while the exit was being written changes its reason.
	oomLate := c.oomKilled && st.Reason == reasonError
	if oomLate {
		st.Reason = reasonOOMKilled
	}
	c.logs = nil
	c.status = st
	if c.exited == nil {
		c.exited = make(chan struct{})
	}
	exited := c.exited
	c.mu.Unlock()
	if oomLate {
		if err := s.persistStatus(ctx, c, st); err != nil {
			klog.FromContext(ctx).Error(err, "Persist container exit")
		}
	}
	// Published before waiters wake, so that STOPPED precedes a DELETED they cause.
	s.containerEvent(c, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT)
	close(exited)
}
