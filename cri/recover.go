package cri

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/skiff-sh/skiff/network"
)

// recover rebuilds the stores from the containers skiff labelled in containerd,
// re-attaching to running tasks and recording exits that happened while no server ran.
func (s *service) recover(ctx context.Context) error {
	sandboxIDs := map[string]bool{} // every sandbox containerd has, recovered or not
	removed := s.finishRemovals(ctx)
	for _, kind := range []string{kindSandbox, kindContainer} {
		list, err := s.client.Containers(ctx, fmt.Sprintf(`labels."%s"==%s`, labelKind, kind))
		if err != nil {
			return fmt.Errorf("list %ss: %w", kind, err)
		}
		for _, cc := range list {
			var err error
			switch {
			case kind == kindSandbox:
				sandboxIDs[cc.ID()] = true
				err = s.recoverSandbox(ctx, cc)
			case removed[cc.ID()]:
				// Its deletion failed again; it stays out of the CRI's view.
			default:
				err = s.recoverContainer(ctx, cc)
			}
			if err != nil {
				// One broken record must not keep the node from serving the rest.
				klog.FromContext(ctx).Error(err, "Skipping unrecoverable "+kind, "id", cc.ID())
			}
		}
	}
	klog.FromContext(ctx).Info("Recovered state from containerd",
		"sandboxes", len(s.store.listSandboxes()), "containers", len(s.store.listContainers()))
	s.releaseLostSandboxes(ctx, sandboxIDs)
	s.removeStaleFIFOs(ctx)
	if err := s.removeOrphanRootfs(ctx); err != nil {
		klog.FromContext(ctx).Error(err, "Removing rootfs snapshots of containers a crash left unmade")
	}
	return nil
}

// releaseLostSandboxes gives back what sandboxes that never made it into containerd hold:
// a RunPodSandbox cut short by a crash leaves its netns, IP and directory behind, and no
// pause container to find them by. Anything of a sandbox containerd still has is kept,
// whether its recovery worked or not.
func (s *service) releaseLostSandboxes(ctx context.Context, known map[string]bool) {
	logger := klog.FromContext(ctx)
	if s.cfg.Network != nil {
		held, err := s.cfg.Network.Sandboxes()
		if err != nil {
			logger.Error(err, "Listing the network state of sandboxes; some may be incomplete")
		}
		for id, netns := range held {
			if known[id] {
				continue
			}
			err := errors.Join(s.cfg.Network.Detach(ctx, network.Pod{ID: id, NetnsPath: netns}), s.cfg.Network.RemoveNetns(netns))
			if err != nil {
				logger.Error(err, "Releasing the network of a lost sandbox", "podSandboxID", id)
				continue
			}
			logger.Info("Released the network of a sandbox lost in a crash", "podSandboxID", id)
		}
	}
	// A sandbox has a directory under RootDir and one under StateDir (its shm and
	// namespace pins); a crash can leave either.
	var dirs []os.DirEntry
	for _, root := range []string{s.cfg.RootDir, s.cfg.StateDir} {
		entries, err := os.ReadDir(filepath.Join(root, "sandboxes"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			logger.Error(err, "Listing sandbox directories")
		}
		dirs = append(dirs, entries...)
	}
	for _, d := range dirs {
		if known[d.Name()] {
			continue
		}
		if err := errors.Join(s.releaseSandboxState(ctx, d.Name()), os.RemoveAll(s.sandboxDir(d.Name()))); err != nil {
			logger.Error(err, "Removing the directory of a lost sandbox", "podSandboxID", d.Name())
		}
	}
}

// extension decodes one of our JSON extensions of a containerd container.
func extension(ctx context.Context, cc containerd.Container, name string, v any) error {
	exts, err := cc.Extensions(ctx)
	if err != nil {
		return err
	}
	ext, ok := exts[name]
	if !ok {
		return fmt.Errorf("extension %s missing: %w", name, errdefs.ErrNotFound)
	}
	return json.Unmarshal(ext.GetValue(), v)
}

func (s *service) recoverSandbox(ctx context.Context, cc containerd.Container) error {
	var meta sandboxMeta
	if err := extension(ctx, cc, extMetadata, &meta); err != nil {
		return err
	}
	meta.config = &runtimeapi.PodSandboxConfig{}
	if err := proto.Unmarshal(meta.Config, meta.config); err != nil {
		return fmt.Errorf("decode sandbox config: %w", err)
	}
	sb := &sandbox{meta: meta, state: runtimeapi.PodSandboxState_SANDBOX_NOTREADY}
	if meta.Pinned {
		if s.pinsHeld(&meta) && (meta.Holder == nil || s.recoverPIDHolder(sb)) {
			sb.state = runtimeapi.PodSandboxState_SANDBOX_READY
		}
		s.store.addSandbox(sb)
		return nil
	}
	task, err := cc.Task(ctx, nil)
	switch {
	case errdefs.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("load pause task: %w", err)
	default:
		st, err := task.Status(ctx)
		if err != nil {
			return fmt.Errorf("pause task status: %w", err)
		}
		if st.Status == containerd.Running {
			exitCh, err := task.Wait(s.ns(s.lifetime))
			if err != nil {
				return fmt.Errorf("wait pause task: %w", err)
			}
			sb.state = runtimeapi.PodSandboxState_SANDBOX_READY
			sb.exited = make(chan struct{})
			sb.pid = task.Pid()
			s.watchSandbox(sb, task, exitCh)
		} else if _, err := task.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete stopped pause task: %w", err)
		}
	}
	s.store.addSandbox(sb)
	return nil
}

func (s *service) recoverContainer(ctx context.Context, cc containerd.Container) error {
	var meta containerMeta
	if err := extension(ctx, cc, extMetadata, &meta); err != nil {
		return err
	}
	meta.config = &runtimeapi.ContainerConfig{}
	if err := proto.Unmarshal(meta.Config, meta.config); err != nil {
		return fmt.Errorf("decode container config: %w", err)
	}
	c := &container{meta: meta}
	if err := extension(ctx, cc, extStatus, &c.status); err != nil {
		return err
	}
	switch c.status.State {
	case runtimeapi.ContainerState_CONTAINER_CREATED:
		if err := s.recoverCreated(ctx, cc, c); err != nil {
			return err
		}
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		c.exited = closedChan()
	default: // running, or a start that was cut short
		if err := s.recoverTask(ctx, cc, c); err != nil {
			return err
		}
	}
	s.store.addContainer(c)
	return nil
}

// recoverCreated handles a container recorded as created whose StartContainer a crash cut
// short after the task was made: a task that never started is deleted, so that the next
// StartContainer makes its own; one that runs (or ran) is adopted like any other.
func (s *service) recoverCreated(ctx context.Context, cc containerd.Container, c *container) error {
	task, err := cc.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load task: %w", err)
	}
	st, err := task.Status(ctx)
	if err != nil {
		return fmt.Errorf("task status: %w", err)
	}
	if st.Status != containerd.Created {
		// The start was never recorded: now is the closest start time there is.
		c.status.StartedAt = nowNano()
		if err := s.recoverTask(ctx, cc, c); err != nil {
			return err
		}
		return s.saveStatus(ctx, c)
	}
	if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete a task that never started: %w", err)
	}
	return nil
}

// recoverTask re-attaches to a running task, or records the exit of a stopped or
// vanished one.
func (s *service) recoverTask(ctx context.Context, cc containerd.Container, c *container) error {
	// Learn where the task's FIFOs are without opening them.
	var fifoDir string
	task, err := cc.Task(ctx, func(set *cio.FIFOSet) (cio.IO, error) {
		if set != nil && set.Stdout != "" {
			fifoDir = filepath.Dir(set.Stdout)
		}
		return cio.NullIO("")
	})
	if errdefs.IsNotFound(err) {
		c.status = containerStatus{State: runtimeapi.ContainerState_CONTAINER_EXITED, StartedAt: c.status.StartedAt,
			FinishedAt: nowNano(), ExitCode: unknownExitCode, Reason: reasonUnknown,
			Message: "task disappeared while the CRI server was not running"}
		c.exited = closedChan()
		return s.saveStatus(ctx, c)
	}
	if err != nil {
		return fmt.Errorf("load task: %w", err)
	}
	st, err := task.Status(ctx)
	if err != nil {
		return fmt.Errorf("task status: %w", err)
	}
	if st.Status != containerd.Running && st.Status != containerd.Paused {
		if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete stopped task: %w", err)
		}
		if fifoDir != "" && filepath.Dir(fifoDir) == s.fifoDir() {
			_ = os.RemoveAll(fifoDir)
		}
		c.exited = make(chan struct{})
		s.recordExit(ctx, c, st.ExitStatus, st.ExitTime)
		return nil
	}
	logs, err := openContainerLog(c.meta.LogPath, c.meta.config.GetTty(), c.meta.config.GetStdin())
	if err != nil {
		return err
	}
	task, err = cc.Task(ctx, logs.attach())
	if err != nil {
		logs.close()
		return fmt.Errorf("attach to task output: %w", err)
	}
	exitCh, err := task.Wait(s.ns(s.lifetime))
	if err != nil {
		logs.close()
		return fmt.Errorf("wait task: %w", err)
	}
	c.status.State = runtimeapi.ContainerState_CONTAINER_RUNNING
	c.status.Pid = task.Pid()
	c.exited = make(chan struct{})
	c.logs = logs
	c.task = task
	s.watchContainer(c, task, exitCh, logs)
	return nil
}

// watchEvents follows containerd's events of our namespace: OOM kills mark containers, so
// their exit reads OOMKilled, and image changes made by others invalidate the image index,
// which is trusted only while this subscription runs.
func (s *service) watchEvents(ctx context.Context) {
	logger := klog.FromContext(ctx)
	ns := "namespace==" + s.cfg.Namespace
	for ctx.Err() == nil {
		// Within a filter, conditions are ANDed; the filters are ORed.
		ch, errs := s.client.Subscribe(ctx, `topic=="/tasks/oom",`+ns, `topic~="^/images/",`+ns)
		s.images.index.setWatching(true)
		s.followEvents(ctx, ch, errs)
		s.images.index.setWatching(false)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
			logger.Info("Resubscribing to containerd events")
		}
	}
}

// followEvents handles events until the subscription fails or ctx ends.
func (s *service) followEvents(ctx context.Context, ch <-chan *events.Envelope, errs <-chan error) {
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-errs:
			if ctx.Err() == nil {
				klog.FromContext(ctx).Error(err, "containerd event subscription failed")
			}
			return
		case env := <-ch:
			if strings.HasPrefix(env.Topic, "/images/") {
				s.reloadImages(ctx)
				continue
			}
			v, err := typeurl.UnmarshalAny(env.Event)
			if err != nil {
				continue
			}
			if oom, ok := v.(*apievents.TaskOOM); ok {
				s.markOOM(ctx, oom.ContainerID)
			}
		}
	}
}

func (s *service) markOOM(ctx context.Context, id string) {
	c, err := s.store.container(id)
	if err != nil {
		return // a sandbox, or not ours
	}
	c.mu.Lock()
	c.oomKilled = true
	// The exit may have been recorded before the event arrived.
	late := c.status.State == runtimeapi.ContainerState_CONTAINER_EXITED && c.status.ExitCode != 0
	if late {
		c.status.Reason = reasonOOMKilled
	}
	c.mu.Unlock()
	if late {
		_ = s.saveStatus(ctx, c)
	}
	klog.FromContext(ctx).V(2).Info("Container hit its memory limit", "containerID", id)
}

// pinsHeld reports whether a sandbox without a pause container still holds its
// namespaces: a stop releases them, and a reboot empties the state directory they are in.
func (s *service) pinsHeld(meta *sandboxMeta) bool {
	if _, err := os.Stat(s.sandboxStateDir(meta.ID)); err != nil {
		return false
	}
	for _, p := range []string{meta.Pins.IPC, meta.Pins.UTS, meta.NetnsPath} {
		if p != "" && !isNamespaceMount(p) {
			return false
		}
	}
	return true
}

// removeStaleFIFOs removes the FIFO directories no recovered task uses: those of tasks
// that exited and were deleted while no server ran, or whose server died between the
// exit and the deletion, and those of exec sessions, which end with their server. A FIFO
// a process still has open keeps working once its name is gone.
func (s *service) removeStaleFIFOs(ctx context.Context) {
	inUse := map[string]bool{}
	for _, c := range s.store.listContainers() {
		c.mu.Lock()
		if c.logs != nil && c.logs.fifoDir != "" {
			inUse[c.logs.fifoDir] = true
		}
		c.mu.Unlock()
	}
	entries, err := os.ReadDir(s.fifoDir())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		klog.FromContext(ctx).Error(err, "List FIFO directories")
	}
	for _, e := range entries {
		dir := filepath.Join(s.fifoDir(), e.Name())
		if inUse[dir] {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			klog.FromContext(ctx).Error(err, "Remove a stale FIFO directory", "dir", dir)
		}
	}
}
