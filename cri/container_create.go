package cri

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
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
	err = s.newContainerRecord(ctx, meta.ID,
		s.withRootfsSnapshot(meta.ID, ci),
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
	podNS, err := sb.namespaces()
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
	nsOpts, err := s.namespaceOpts(podNS, sc.GetNamespaceOptions())
	if err != nil {
		return nil, err
	}
	return append(opts, nsOpts...), nil
}

// namespaceOpts joins the container to its pod's namespaces, or the host's.
func (s *service) namespaceOpts(pod podNamespaces, nsOpts *runtimeapi.NamespaceOption) ([]oci.SpecOpts, error) {
	ipc := pod.IPC
	if nsOpts.GetIpc() == runtimeapi.NamespaceMode_NODE {
		ipc = ""
	}
	opts := []oci.SpecOpts{
		withNamespacePath(specs.NetworkNamespace, pod.Net),
		withNamespacePath(specs.UTSNamespace, pod.UTS),
		withNamespacePath(specs.IPCNamespace, ipc),
	}
	switch nsOpts.GetPid() {
	case runtimeapi.NamespaceMode_NODE:
		opts = append(opts, withNamespacePath(specs.PIDNamespace, ""))
	case runtimeapi.NamespaceMode_POD:
		if pod.PID == "" {
			return nil, fmt.Errorf("linux.security_context.namespace_options.pid is POD, but the container's sandbox "+
				"was run without a pod PID namespace; run the sandbox with namespace_options.pid POD too: %w",
				errdefs.ErrFailedPrecondition)
		}
		opts = append(opts, withNamespacePath(specs.PIDNamespace, pod.PID))
	case runtimeapi.NamespaceMode_TARGET:
		if target, err := s.store.container(nsOpts.GetTargetId()); err == nil && target.Status().Pid != 0 {
			opts = append(opts, withNamespacePath(specs.PIDNamespace, fmt.Sprintf("/proc/%d/ns/pid", target.Status().Pid)))
		}
	}
	return opts, nil
}
