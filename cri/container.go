package cri

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"github.com/moby/sys/signal"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// Exit codes and reasons as the kubelet expects them.
const (
	startErrorExitCode = 128
	reasonCompleted    = "Completed"
	reasonError        = "Error"
	reasonOOMKilled    = "OOMKilled"
	reasonStartError   = "StartError"
	reasonUnknown      = "Unknown"
	unknownExitCode    = 255
)

// containerName is the unique name key of a container, as containerd's CRI forms it.
func containerName(c *runtimeapi.ContainerMetadata, sb *runtimeapi.PodSandboxMetadata) string {
	return strings.Join([]string{c.GetName(), sb.GetName(), sb.GetNamespace(), sb.GetUid(),
		strconv.FormatUint(uint64(c.GetAttempt()), 10)}, "_")
}

// CreateContainer creates a container in a running sandbox from a local image.
func (s *service) CreateContainer(ctx context.Context, req *runtimeapi.CreateContainerRequest) (_ *runtimeapi.CreateContainerResponse, retErr error) {
	ctx = s.ns(ctx)
	// A copy: prepareImageVolumes records image IDs in the config's mounts.
	cfg, _ := proto.Clone(req.GetConfig()).(*runtimeapi.ContainerConfig)
	if cfg.GetMetadata().GetName() == "" {
		return nil, fmt.Errorf("container metadata needs a name: %w", errdefs.ErrInvalidArgument)
	}
	if sc := cfg.GetLinux().GetSecurityContext(); sc.GetRunAsGroup() != nil && sc.GetRunAsUser() == nil && sc.GetRunAsUsername() == "" {
		return nil, fmt.Errorf("run_as_group is set without run_as_user or run_as_username: %w", errdefs.ErrInvalidArgument)
	}
	sb, err := s.store.sandbox(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	sbCfg := sb.meta.config
	if err := validateContainerRequest(cfg, sbCfg); err != nil {
		return nil, err
	}
	meta := containerMeta{
		ID:        newID(),
		Name:      containerName(cfg.GetMetadata(), sbCfg.GetMetadata()),
		SandboxID: sb.meta.ID,
		CreatedAt: nowNano(),
		config:    cfg,
	}
	if err := s.store.reserveName(meta.Name, meta.ID); err != nil {
		return nil, fmt.Errorf("container: %w", err)
	}
	defer func() {
		if retErr != nil {
			s.store.releaseName(meta.Name, meta.ID)
		}
	}()
	timing := newSteps()
	ci, err := s.findImage(ctx, cfg.GetImage().GetImage())
	if err != nil {
		return nil, fmt.Errorf("resolve image: %w", err)
	}
	timing.done("image")
	meta.ImageRef, meta.ImageID = ci.names[0], ci.info.id
	meta.StopSignal = ci.info.config.StopSignal
	if dir, rel := sbCfg.GetLogDirectory(), cfg.GetLogPath(); dir != "" && rel != "" {
		meta.LogPath = filepath.Join(dir, rel)
	}
	defer func() {
		if retErr != nil {
			// The request's context may be what failed; the undo must still run.
			if err := s.removeImageVolumes(context.WithoutCancel(ctx), meta.ID); err != nil {
				klog.FromContext(ctx).Error(err, "Clean up image volumes of a failed container", "containerID", meta.ID)
			}
		}
	}()
	imageMounts, err := s.prepareImageVolumes(ctx, meta.ID, cfg)
	if err != nil {
		return nil, err
	}
	if meta.Config, err = proto.Marshal(cfg); err != nil {
		return nil, fmt.Errorf("encode container config: %w", err)
	}
	timing.done("imageVolumes")
	specOpts, err := s.containerSpecOpts(ctx, sb, &meta, ci.info, imageMounts)
	if err != nil {
		return nil, err
	}
	metaExt, err := jsonAny("ContainerMetadata", meta)
	if err != nil {
		return nil, err
	}
	c := &container{meta: meta, status: containerStatus{State: runtimeapi.ContainerState_CONTAINER_CREATED}}
	// The process identity goes into ContainerStatus; read it off the spec as it is made
	// rather than from containerd on the first status call.
	specOpts = append(specOpts, func(_ context.Context, _ oci.Client, _ *containers.Container, spec *oci.Spec) error {
		c.user = specUser(spec)
		return nil
	})
	statusExt, err := jsonAny("ContainerStatus", c.status)
	if err != nil {
		return nil, err
	}
	_, err = s.client.NewContainer(ctx, meta.ID,
		s.withNewSnapshot(meta.ID, ci),
		containerd.WithImageName(ci.names[0]),
		containerd.WithNewSpec(specOpts...),
		containerd.WithRuntime(runcRuntimeName, s.runcOptions()),
		containerd.WithContainerLabels(map[string]string{labelKind: kindContainer, labelSandboxID: sb.meta.ID}),
		containerd.WithContainerExtension(extMetadata, metaExt),
		containerd.WithContainerExtension(extStatus, statusExt),
	)
	if err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	timing.done("container") // snapshot, OCI spec, containerd record
	s.store.addContainer(c)
	s.containerEvent(c, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT)
	klog.FromContext(ctx).V(2).Info("Created container", append([]any{"containerID", meta.ID, "name", meta.Name}, timing.keysAndValues()...)...)
	return &runtimeapi.CreateContainerResponse{ContainerId: meta.ID}, nil
}

// containerSpecOpts builds the container's OCI spec: image config merged with the
// CRI config, joined into the sandbox's namespaces.
func (s *service) containerSpecOpts(ctx context.Context, sb *sandbox, meta *containerMeta, info *imageInfo, imageMounts []specs.Mount) ([]oci.SpecOpts, error) {
	cfg, sbCfg := meta.config, sb.meta.config
	pausePid, err := s.pausePid(ctx, sb)
	if err != nil {
		return nil, err
	}
	args, err := containerArgs(cfg, info.config.Entrypoint, info.config.Cmd)
	if err != nil {
		return nil, err
	}
	hostname := sbCfg.GetHostname()
	if hostNetwork(sbCfg) || hostname == "" {
		hostname, _ = os.Hostname()
	}
	sc := cfg.GetLinux().GetSecurityContext()
	mounts, err := criMounts(cfg.GetMounts(), sc.GetReadonlyRootfs(), s.features)
	if err != nil {
		return nil, err
	}
	mounts = append(mounts, imageMounts...)
	mounts = append(mounts, sandboxFileMounts(s.sandboxDir(sb.meta.ID), cfg.GetMounts(), sc.GetReadonlyRootfs())...)
	if !hasMountAt(cfg.GetMounts(), "/dev/shm") {
		mounts = append(mounts, s.shmMount(&sb.meta))
	}
	var dests []string
	for _, m := range mounts {
		dests = append(dests, m.Destination)
	}
	cwd := cfg.GetWorkingDir()
	if cwd == "" {
		cwd = info.config.WorkingDir
	}
	if cwd == "" {
		cwd = "/"
	}
	opts := []oci.SpecOpts{
		oci.WithProcessArgs(args...),
		oci.WithProcessCwd(cwd),
		withEnvReplaced(containerEnv(info.config.Env, cfg.GetEnvs(), hostname)),
		oci.WithoutMounts(dests...),
		oci.WithMounts(mounts),
		withRootfsPropagation(cfg.GetMounts()),
		oci.WithCgroup(path.Join(path.Dir(sb.meta.CgroupsPath), meta.ID)),
		withSysctls(sbCfg.GetLinux().GetSysctls()),
		withResources(cfg.GetLinux().GetResources(), s.oom),
		oci.WithAnnotations(map[string]string{
			"io.kubernetes.cri.container-type":    "container",
			"io.kubernetes.cri.container-name":    cfg.GetMetadata().GetName(),
			"io.kubernetes.cri.sandbox-id":        sb.meta.ID,
			"io.kubernetes.cri.sandbox-name":      sbCfg.GetMetadata().GetName(),
			"io.kubernetes.cri.sandbox-namespace": sbCfg.GetMetadata().GetNamespace(),
			"io.kubernetes.cri.image-name":        meta.ImageRef,
		}),
	}
	if cfg.GetTty() {
		opts = append(opts, oci.WithTTY)
	}
	opts = append(opts, withUser(sc, info.config.User)...)
	secOpts, err := withSecurityContext(sc)
	if err != nil {
		return nil, err
	}
	opts = append(opts, secOpts...)
	opts = append(opts, s.namespaceOpts(sb, sc.GetNamespaceOptions(), pausePid)...)
	return opts, nil
}

// namespaceOpts joins the pause process's namespaces (or the host's).
func (s *service) namespaceOpts(sb *sandbox, nsOpts *runtimeapi.NamespaceOption, pausePid uint32) []oci.SpecOpts {
	proc := func(ns string) string { return fmt.Sprintf("/proc/%d/ns/%s", pausePid, ns) }
	var opts []oci.SpecOpts
	if hostNetwork(sb.meta.config) {
		opts = append(opts, withNamespacePath(specs.NetworkNamespace, ""), withNamespacePath(specs.UTSNamespace, ""))
	} else {
		opts = append(opts, withNamespacePath(specs.NetworkNamespace, sb.meta.NetnsPath),
			withNamespacePath(specs.UTSNamespace, proc("uts")))
	}
	if nsOpts.GetIpc() == runtimeapi.NamespaceMode_NODE {
		opts = append(opts, withNamespacePath(specs.IPCNamespace, ""))
	} else {
		opts = append(opts, withNamespacePath(specs.IPCNamespace, proc("ipc")))
	}
	switch nsOpts.GetPid() {
	case runtimeapi.NamespaceMode_NODE:
		opts = append(opts, withNamespacePath(specs.PIDNamespace, ""))
	case runtimeapi.NamespaceMode_POD:
		opts = append(opts, withNamespacePath(specs.PIDNamespace, proc("pid")))
	case runtimeapi.NamespaceMode_TARGET:
		if target, err := s.store.container(nsOpts.GetTargetId()); err == nil && target.Status().Pid != 0 {
			opts = append(opts, withNamespacePath(specs.PIDNamespace, fmt.Sprintf("/proc/%d/ns/pid", target.Status().Pid)))
		}
	}
	return opts
}

// pausePid returns the PID of a ready sandbox's pause process.
func (s *service) pausePid(_ context.Context, sb *sandbox) (uint32, error) {
	sb.mu.Lock()
	state, pid := sb.state, sb.pid
	sb.mu.Unlock()
	if state != runtimeapi.PodSandboxState_SANDBOX_READY || pid == 0 {
		return 0, fmt.Errorf("sandbox %s is not ready: %w", sb.meta.ID, errdefs.ErrFailedPrecondition)
	}
	return pid, nil
}

// saveStatus persists the container's status extension.
func (s *service) saveStatus(ctx context.Context, c *container) error {
	c.persistMu.Lock()
	defer c.persistMu.Unlock()
	return s.persistStatus(ctx, c, c.Status())
}

// persistStatus writes st as the container's status extension.
func (s *service) persistStatus(ctx context.Context, c *container, st containerStatus) error {
	ext, err := jsonAny("ContainerStatus", st)
	if err != nil {
		return err
	}
	_, err = s.client.ContainerService().Update(ctx, containers.Container{
		ID:         c.meta.ID,
		Extensions: map[string]typeurl.Any{extStatus: ext},
	}, "extensions."+extStatus)
	if err != nil {
		return fmt.Errorf("save status of container %s: %w", c.meta.ID, err)
	}
	return nil
}

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
		if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			logger.Error(err, "Delete exited task")
		}
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

// StopContainer signals the container (its stop signal, then SIGKILL after the
// timeout). Stopping an unknown or exited container succeeds.
func (s *service) StopContainer(ctx context.Context, req *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	ctx = s.ns(ctx)
	c, err := s.store.container(req.GetContainerId())
	if errdefs.IsNotFound(err) {
		return &runtimeapi.StopContainerResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := s.stopContainer(ctx, c, time.Duration(req.GetTimeout())*time.Second); err != nil {
		return nil, err
	}
	return &runtimeapi.StopContainerResponse{}, nil
}

func (s *service) stopContainer(ctx context.Context, c *container, timeout time.Duration) error {
	c.mu.Lock()
	state, exited, task := c.status.State, c.exited, c.task
	c.mu.Unlock()
	if state != runtimeapi.ContainerState_CONTAINER_RUNNING || exited == nil {
		return nil
	}
	if task == nil {
		<-exited // it exited: the watcher is recording that
		return nil
	}
	if timeout > 0 {
		sig := syscall.SIGTERM
		if name := stopSignalName(c); name != "" {
			if parsed, err := signal.ParseSignal(name); err == nil {
				sig = parsed
			}
		}
		if err := task.Kill(ctx, sig); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("signal container: %w", err)
		}
		select {
		case <-exited:
			return nil
		case <-time.After(timeout):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := task.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("kill container: %w", err)
	}
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for container %s to exit: %w", c.meta.ID, ctx.Err())
	}
}

// stopSignalName prefers the CRI config's stop signal over the image's.
func stopSignalName(c *container) string {
	if sig := c.meta.config.GetStopSignal(); sig != runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT {
		return strings.TrimPrefix(sig.String(), "SIGNAL_")
	}
	return c.meta.StopSignal
}

// RemoveContainer stops the container if needed and deletes it with its snapshot.
// Removing an unknown container succeeds.
func (s *service) RemoveContainer(ctx context.Context, req *runtimeapi.RemoveContainerRequest) (*runtimeapi.RemoveContainerResponse, error) {
	ctx = s.ns(ctx)
	c, err := s.store.container(req.GetContainerId())
	if errdefs.IsNotFound(err) {
		return &runtimeapi.RemoveContainerResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := s.removeContainer(ctx, c); err != nil {
		return nil, err
	}
	return &runtimeapi.RemoveContainerResponse{}, nil
}

func (s *service) removeContainer(ctx context.Context, c *container) error {
	if err := s.stopContainer(ctx, c, 0); err != nil {
		return err
	}
	c.mu.Lock()
	deleted := c.taskDeleted
	c.mu.Unlock()
	if deleted != nil {
		select {
		case <-deleted:
		case <-ctx.Done():
			return fmt.Errorf("wait for the task of container %s to be deleted: %w", c.meta.ID, ctx.Err())
		}
	}
	cc, err := s.client.LoadContainer(ctx, c.meta.ID)
	if err == nil {
		if task, err := cc.Task(ctx, nil); err == nil {
			_, _ = task.Delete(ctx, containerd.WithProcessKill)
		}
		err = cc.Delete(ctx, containerd.WithSnapshotCleanup)
	}
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete container %s: %w", c.meta.ID, err)
	}
	if err := s.removeImageVolumes(ctx, c.meta.ID); err != nil {
		return fmt.Errorf("delete container %s: %w", c.meta.ID, err)
	}
	s.store.deleteContainer(c.meta.ID)
	s.containerEvent(c, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT)
	klog.FromContext(ctx).V(2).Info("Removed container", "containerID", c.meta.ID)
	return nil
}

// ReopenContainerLog reopens a running container's log file after the kubelet rotated it.
func (s *service) ReopenContainerLog(ctx context.Context, req *runtimeapi.ReopenContainerLogRequest) (*runtimeapi.ReopenContainerLogResponse, error) {
	c, err := s.store.container(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	logs := c.logs
	c.mu.Unlock()
	if logs == nil {
		return nil, fmt.Errorf("container %s is not running: %w", c.meta.ID, errdefs.ErrFailedPrecondition)
	}
	if err := logs.reopen(); err != nil {
		return nil, err
	}
	return &runtimeapi.ReopenContainerLogResponse{}, nil
}

// ContainerStatus reports one container.
func (s *service) ContainerStatus(ctx context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	ctx = s.ns(ctx)
	c, err := s.store.container(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	st := c.Status()
	resp := &runtimeapi.ContainerStatusResponse{Status: s.containerStatus(ctx, c)}
	if req.GetVerbose() {
		info, _ := json.Marshal(map[string]any{"pid": st.Pid, "sandboxID": c.meta.SandboxID, "imageRef": c.meta.ImageRef})
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

// containerStatus builds the CRI status of a container; ctx must carry our namespace.
func (s *service) containerStatus(ctx context.Context, c *container) *runtimeapi.ContainerStatus {
	st := c.Status()
	cfg := c.meta.config
	image, imageRef := cfg.GetImage().GetImage(), c.meta.ImageID
	if ci, err := s.findImage(ctx, c.meta.ImageID); err == nil {
		tags, digests := ci.refs()
		if len(tags) > 0 {
			image = tags[0]
		}
		if len(digests) > 0 {
			imageRef = digests[0]
		}
	}
	status := &runtimeapi.ContainerStatus{
		Id:          c.meta.ID,
		Metadata:    cfg.GetMetadata(),
		State:       st.State,
		CreatedAt:   c.meta.CreatedAt,
		StartedAt:   st.StartedAt,
		FinishedAt:  st.FinishedAt,
		ExitCode:    st.ExitCode,
		Image:       &runtimeapi.ImageSpec{Image: image, Annotations: cfg.GetImage().GetAnnotations()},
		ImageRef:    imageRef,
		ImageId:     c.meta.ImageID,
		Reason:      st.Reason,
		Message:     st.Message,
		Labels:      cfg.GetLabels(),
		Annotations: cfg.GetAnnotations(),
		Mounts:      cfg.GetMounts(),
		LogPath:     c.meta.LogPath,
		User:        s.containerUser(ctx, c),
	}
	if st.State == runtimeapi.ContainerState_CONTAINER_UNKNOWN {
		// A start in progress looks created to callers.
		status.State = runtimeapi.ContainerState_CONTAINER_CREATED
	}
	return status
}

// containerUser reads the process identity from the container's spec once; it is
// nil if containerd cannot say (the status is still worth answering).
func (s *service) containerUser(ctx context.Context, c *container) *runtimeapi.ContainerUser {
	c.mu.Lock()
	user := c.user
	c.mu.Unlock()
	if user != nil {
		return user
	}
	cc, err := s.client.LoadContainer(ctx, c.meta.ID)
	if err != nil {
		return nil
	}
	spec, err := cc.Spec(ctx)
	if err != nil {
		klog.FromContext(ctx).V(4).Info("Read container spec", "containerID", c.meta.ID, "err", err)
		return nil
	}
	user = specUser(spec)
	c.mu.Lock()
	c.user = user
	c.mu.Unlock()
	return user
}

// ListContainers lists containers matching the filter.
func (s *service) ListContainers(ctx context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	f := req.GetFilter()
	resp := &runtimeapi.ListContainersResponse{}
	for _, c := range s.store.listContainers() {
		st := c.Status().State
		if st == runtimeapi.ContainerState_CONTAINER_UNKNOWN {
			st = runtimeapi.ContainerState_CONTAINER_CREATED
		}
		cfg := c.meta.config
		switch {
		case f.GetId() != "" && !strings.HasPrefix(c.meta.ID, f.GetId()),
			f.GetPodSandboxId() != "" && !strings.HasPrefix(c.meta.SandboxID, f.GetPodSandboxId()),
			f.GetState() != nil && f.GetState().GetState() != st,
			!labelsMatch(cfg.GetLabels(), f.GetLabelSelector()):
			continue
		}
		resp.Containers = append(resp.Containers, &runtimeapi.Container{
			Id:           c.meta.ID,
			PodSandboxId: c.meta.SandboxID,
			Metadata:     cfg.GetMetadata(),
			Image:        cfg.GetImage(),
			ImageRef:     c.meta.ImageID,
			ImageId:      c.meta.ImageID,
			State:        st,
			CreatedAt:    c.meta.CreatedAt,
			Labels:       cfg.GetLabels(),
			Annotations:  cfg.GetAnnotations(),
		})
	}
	return resp, nil
}
