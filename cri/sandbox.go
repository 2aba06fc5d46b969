package cri

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/skiff-sh/skiff/network"
)

// sandboxOOMScoreAdj keeps the pause process among the last to be OOM-killed.
const sandboxOOMScoreAdj = -998

func newID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// sandboxName is the unique name key of a sandbox, as containerd's CRI forms it.
func sandboxName(md *runtimeapi.PodSandboxMetadata) string {
	return strings.Join([]string{md.GetName(), md.GetNamespace(), md.GetUid(), strconv.FormatUint(uint64(md.GetAttempt()), 10)}, "_")
}

func (s *service) sandboxDir(id string) string { return filepath.Join(s.cfg.RootDir, "sandboxes", id) }

// sandboxShm is the tmpfs the pod's containers share as /dev/shm.
func (s *service) sandboxShm(id string) string {
	return filepath.Join(s.cfg.StateDir, "sandboxes", id, "shm")
}

// sandboxShmSize is the pod's /dev/shm size, as containerd's CRI sizes it.
const sandboxShmSize = "65536k"

func hostIPC(cfg *runtimeapi.PodSandboxConfig) bool {
	return cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetIpc() == runtimeapi.NamespaceMode_NODE
}

// mountSandboxShm mounts the pod's shared /dev/shm (POSIX shared memory follows the
// IPC namespace, so all containers of a pod must see the same tmpfs).
func (s *service) mountSandboxShm(id string) error {
	shm := s.sandboxShm(id)
	if err := os.MkdirAll(shm, 0o700); err != nil {
		return fmt.Errorf("create sandbox shm: %w", err)
	}
	if err := syscall.Mount("shm", shm, "tmpfs", syscall.MS_NOEXEC|syscall.MS_NOSUID|syscall.MS_NODEV,
		"mode=1777,size="+sandboxShmSize); err != nil {
		return fmt.Errorf("mount sandbox shm: %w", err)
	}
	return nil
}

// unmountSandboxShm is idempotent.
func (s *service) unmountSandboxShm(id string) error {
	shm := s.sandboxShm(id)
	if err := syscall.Unmount(shm, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("unmount sandbox shm: %w", err)
	}
	return os.RemoveAll(filepath.Dir(shm))
}

// shmMount is the /dev/shm mount of the sandbox's containers.
func (s *service) shmMount(sb *sandboxMeta) specs.Mount {
	src := s.sandboxShm(sb.ID)
	if hostIPC(sb.config) {
		src = "/dev/shm"
	}
	return specs.Mount{Destination: "/dev/shm", Source: src, Type: "bind", Options: []string{"rbind", "rprivate", "rw"}}
}

func hostNetwork(cfg *runtimeapi.PodSandboxConfig) bool {
	return cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() == runtimeapi.NamespaceMode_NODE
}

// RunPodSandbox creates the pod's network namespace, attaches it through CNI, writes
// hostname/hosts/resolv.conf and starts the pause container holding the namespaces.
func (s *service) RunPodSandbox(ctx context.Context, req *runtimeapi.RunPodSandboxRequest) (_ *runtimeapi.RunPodSandboxResponse, retErr error) {
	ctx = s.ns(ctx)
	cfg := req.GetConfig()
	md := cfg.GetMetadata()
	if md.GetName() == "" || md.GetNamespace() == "" || md.GetUid() == "" {
		return nil, fmt.Errorf("sandbox metadata needs name, namespace and uid: %w", errdefs.ErrInvalidArgument)
	}
	if err := validateSandboxRequest(req); err != nil {
		return nil, err
	}
	meta := sandboxMeta{ID: newID(), Name: sandboxName(md), CreatedAt: nowNano(), config: cfg}
	if err := s.store.reserveName(meta.Name, meta.ID); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	var undo []func()
	defer func() {
		if retErr != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	undo = append(undo, func() { s.store.releaseName(meta.Name, meta.ID) })
	logger := klog.FromContext(ctx).WithValues("pod", md.GetNamespace()+"/"+md.GetName(), "podSandboxID", meta.ID)

	dir := s.sandboxDir(meta.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create sandbox directory: %w", err)
	}
	undo = append(undo, func() { _ = os.RemoveAll(dir) })

	timing := newSteps()
	if !hostIPC(cfg) {
		if err := s.mountSandboxShm(meta.ID); err != nil {
			return nil, err
		}
		undo = append(undo, func() { _ = s.unmountSandboxShm(meta.ID) })
	}
	timing.done("shm")
	// CNI ADD runs while the pause container and its task (shim + runc create) are made:
	// both only need the netns to exist, and together they are most of a sandbox's start.
	joinNetwork := func() error { return nil }
	if !hostNetwork(cfg) {
		if err := s.createNetns(&meta, &undo); err != nil {
			return nil, err
		}
		joinNetwork = s.attachPodNetwork(ctx, &meta, &undo, timing)
	}
	timing.done("netns")
	parent := cfg.GetLinux().GetCgroupParent()
	if parent == "" {
		parent = s.cfg.CgroupParent
	}
	meta.CgroupsPath = path.Join(parent, meta.ID)
	var err error
	if meta.Config, err = proto.Marshal(cfg); err != nil {
		_ = joinNetwork()
		return nil, fmt.Errorf("encode sandbox config: %w", err)
	}
	sb := &sandbox{meta: meta, state: runtimeapi.PodSandboxState_SANDBOX_NOTREADY}
	cc, task, err := s.createPause(ctx, sb, &undo, timing)
	if err = errors.Join(err, joinNetwork()); err != nil {
		return nil, err
	}
	timing.done("networkWait")
	sb.meta.IPs = meta.IPs
	if err := writeSandboxFiles(dir, cfg, meta.IPs); err != nil {
		return nil, err
	}
	timing.done("files")
	if err := s.startPause(ctx, sb, cc, task); err != nil {
		return nil, err
	}
	timing.done("pauseTaskStart")
	s.store.addSandbox(sb)
	s.sandboxEvent(sb, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT)
	s.sandboxEvent(sb, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT)
	logger.V(2).Info("Started pod sandbox", append([]any{"ips", meta.IPs}, timing.keysAndValues()...)...)
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: meta.ID}, nil
}

// createNetns creates the sandbox's network namespace.
func (s *service) createNetns(meta *sandboxMeta, undo *[]func()) error {
	if s.cfg.Network == nil {
		return fmt.Errorf("pod network requested but no network is configured: %w", errdefs.ErrFailedPrecondition)
	}
	netns, err := s.cfg.Network.CreateNetns(meta.ID)
	if err != nil {
		return fmt.Errorf("create network namespace: %w", err)
	}
	meta.NetnsPath = netns
	*undo = append(*undo, func() { _ = s.cfg.Network.RemoveNetns(netns) })
	return nil
}

// attachPodNetwork starts CNI ADD for the sandbox and returns the function that waits for
// it: it records the pod IPs in meta and the undo (CNI DEL, which also cleans up a half-done
// ADD). The returned function must be called, from the caller's goroutine, on every path.
func (s *service) attachPodNetwork(ctx context.Context, meta *sandboxMeta, undo *[]func(), timing *steps) func() error {
	pod := podOf(meta)
	type outcome struct {
		res  *network.Result
		err  error
		took time.Duration
	}
	done := make(chan outcome, 1)
	go func() {
		start := time.Now()
		res, err := s.cfg.Network.Attach(ctx, pod)
		done <- outcome{res, err, time.Since(start)}
	}()
	return func() error {
		out := <-done
		*undo = append(*undo, func() { _ = s.cfg.Network.Detach(context.WithoutCancel(ctx), pod) })
		timing.record("cniAdd", out.took)
		if out.err != nil {
			return fmt.Errorf("set up pod network: %w", out.err)
		}
		for _, ip := range out.res.IPs {
			meta.IPs = append(meta.IPs, ip.String())
		}
		return nil
	}
}

// podOf describes a sandbox to the network.
func podOf(meta *sandboxMeta) network.Pod {
	md := meta.config.GetMetadata()
	pod := network.Pod{ID: meta.ID, Namespace: md.GetNamespace(), Name: md.GetName(), UID: md.GetUid(), NetnsPath: meta.NetnsPath}
	for _, pm := range meta.config.GetPortMappings() {
		if pm.GetHostPort() <= 0 {
			continue
		}
		pod.Ports = append(pod.Ports, network.PortMapping{
			HostPort:      pm.GetHostPort(),
			ContainerPort: pm.GetContainerPort(),
			Protocol:      strings.ToLower(pm.GetProtocol().String()),
			HostIP:        pm.GetHostIp(),
		})
	}
	return pod
}

// createPause creates the pause container of sb and its task (the shim and `runc create`),
// not yet started.
func (s *service) createPause(ctx context.Context, sb *sandbox, undo *[]func(), timing *steps) (containerd.Container, containerd.Task, error) {
	ci, err := s.findImage(ctx, s.cfg.PauseImage)
	if err != nil {
		return nil, nil, fmt.Errorf("pause image %s: %w", s.cfg.PauseImage, err)
	}
	img := s.imageObject(ci)
	ext, err := jsonAny("SandboxMetadata", sb.meta)
	if err != nil {
		return nil, nil, err
	}
	cc, err := s.client.NewContainer(ctx, sb.meta.ID,
		s.withNewSnapshot(sb.meta.ID, ci),
		containerd.WithNewSpec(s.pauseSpecOpts(sb, img)...),
		containerd.WithRuntime(runcRuntimeName, s.runcOptions()),
		containerd.WithContainerLabels(map[string]string{labelKind: kindSandbox}),
		containerd.WithContainerExtension(extMetadata, ext),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("create pause container: %w", err)
	}
	timing.done("pauseContainer")
	*undo = append(*undo, func() {
		_ = cc.Delete(context.WithoutCancel(ctx), containerd.WithSnapshotCleanup)
	})
	task, err := cc.NewTask(ctx, cio.NullIO)
	if err != nil {
		return nil, nil, fmt.Errorf("create pause task: %w", err)
	}
	timing.done("pauseTaskCreate")
	*undo = append(*undo, func() {
		_, _ = task.Delete(context.WithoutCancel(ctx), containerd.WithProcessKill)
	})
	return cc, task, nil
}

// startPause records the sandbox's final metadata (its IPs were not known when the pause
// container was created) on the container while the pause task starts, and marks sb ready.
func (s *service) startPause(ctx context.Context, sb *sandbox, cc containerd.Container, task containerd.Task) error {
	ext, err := jsonAny("SandboxMetadata", sb.meta)
	if err != nil {
		return err
	}
	updated := make(chan error, 1)
	go func() {
		updated <- cc.Update(ctx, func(ctx context.Context, client *containerd.Client, c *containers.Container) error {
			return containerd.WithContainerExtension(extMetadata, ext)(ctx, client, c)
		})
	}()
	exitCh, err := task.Wait(s.ns(s.lifetime))
	if err == nil {
		err = task.Start(ctx)
	}
	if err = errors.Join(err, <-updated); err != nil {
		return fmt.Errorf("start pause task: %w", err)
	}
	sb.state = runtimeapi.PodSandboxState_SANDBOX_READY
	sb.exited = make(chan struct{})
	sb.pid = task.Pid()
	s.watchSandbox(sb, task, exitCh)
	return nil
}

// watchSandbox marks the sandbox NOTREADY and deletes the pause task once it exits.
func (s *service) watchSandbox(sb *sandbox, task containerd.Task, exitCh <-chan containerd.ExitStatus) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-s.lifetime.Done():
			return
		case <-exitCh:
		}
		ctx := s.ns(s.lifetime)
		if _, err := task.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
			klog.FromContext(ctx).Error(err, "Delete exited pause task", "podSandboxID", sb.meta.ID)
		}
		sb.mu.Lock()
		sb.state = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
		exited := sb.exited
		sb.mu.Unlock()
		// Published before waiters wake, so that STOPPED precedes a DELETED they cause.
		s.sandboxEvent(sb, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT)
		close(exited)
	}()
}

func (s *service) runcOptions() *runcoptions.Options {
	// Our own runc root keeps two runtimes on one host from sharing state.
	return &runcoptions.Options{Root: filepath.Join(s.cfg.StateDir, "runc")}
}

func (s *service) fifoDir() string { return filepath.Join(s.cfg.StateDir, "io") }

// pauseSpecOpts builds the pause container's OCI spec.
func (s *service) pauseSpecOpts(sb *sandbox, img containerd.Image) []oci.SpecOpts {
	cfg := sb.meta.config
	nsOpts := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	opts := []oci.SpecOpts{
		oci.WithImageConfig(img),
		oci.WithoutRunMount,
		oci.WithRootFSReadonly(),
		oci.WithNoNewPrivileges,
		oci.WithCgroup(sb.meta.CgroupsPath),
		oci.WithAnnotations(map[string]string{
			"io.kubernetes.cri.container-type":    "sandbox",
			"io.kubernetes.cri.sandbox-id":        sb.meta.ID,
			"io.kubernetes.cri.sandbox-name":      cfg.GetMetadata().GetName(),
			"io.kubernetes.cri.sandbox-namespace": cfg.GetMetadata().GetNamespace(),
			"io.kubernetes.cri.sandbox-uid":       cfg.GetMetadata().GetUid(),
		}),
		withOOMScoreAdj(s.oom.clamp(sandboxOOMScoreAdj)),
		oci.WithoutMounts("/dev/shm"),
		oci.WithMounts([]specs.Mount{s.shmMount(&sb.meta)}),
		withSysctls(cfg.GetLinux().GetSysctls()),
		oci.WithCapabilities(nil), // pause needs none
	}
	if hostNetwork(cfg) {
		opts = append(opts, oci.WithHostNamespace(specs.NetworkNamespace), oci.WithHostNamespace(specs.UTSNamespace))
	} else {
		opts = append(opts,
			oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: sb.meta.NetnsPath}),
			oci.WithHostname(cfg.GetHostname()))
	}
	if nsOpts.GetPid() == runtimeapi.NamespaceMode_NODE {
		opts = append(opts, oci.WithHostNamespace(specs.PIDNamespace))
	}
	if nsOpts.GetIpc() == runtimeapi.NamespaceMode_NODE {
		opts = append(opts, oci.WithHostNamespace(specs.IPCNamespace))
	}
	if sc := cfg.GetLinux().GetSecurityContext(); sc.GetRunAsUser() != nil {
		gid := uint32(65535)
		if sc.GetRunAsGroup() != nil {
			gid = uint32(sc.GetRunAsGroup().GetValue())
		}
		opts = append(opts, oci.WithUIDGID(uint32(sc.GetRunAsUser().GetValue()), gid))
	}
	return opts
}

// StopPodSandbox stops every container of the sandbox, the pause container, and
// tears down the pod network. Stopping an unknown or stopped sandbox succeeds.
func (s *service) StopPodSandbox(ctx context.Context, req *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	ctx = s.ns(ctx)
	sb, err := s.store.sandbox(req.GetPodSandboxId())
	if errdefs.IsNotFound(err) {
		return &runtimeapi.StopPodSandboxResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := s.stopSandbox(ctx, sb); err != nil {
		return nil, err
	}
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

func (s *service) stopSandbox(ctx context.Context, sb *sandbox) error {
	for _, c := range s.store.containersOf(sb.meta.ID) {
		if err := s.stopContainer(ctx, c, 0); err != nil {
			return fmt.Errorf("stop container %s of sandbox %s: %w", c.meta.ID, sb.meta.ID, err)
		}
	}
	// The pod network comes down while the pause task dies: CNI DEL needs the netns, which
	// the bind mount holds, not the pause process.
	detached := make(chan error, 1)
	go func() { detached <- s.detachPodNetwork(ctx, sb) }()
	if err := errors.Join(s.stopPause(ctx, sb), <-detached); err != nil {
		return err
	}
	if err := s.unmountSandboxShm(sb.meta.ID); err != nil {
		return err
	}
	sb.setState(runtimeapi.PodSandboxState_SANDBOX_NOTREADY)
	return nil
}

// detachPodNetwork runs CNI DEL for the sandbox and removes its netns.
func (s *service) detachPodNetwork(ctx context.Context, sb *sandbox) error {
	if sb.meta.NetnsPath == "" || s.cfg.Network == nil {
		return nil
	}
	if err := s.cfg.Network.Detach(ctx, podOf(&sb.meta)); err != nil {
		return fmt.Errorf("tear down pod network of sandbox %s: %w", sb.meta.ID, err)
	}
	if err := s.cfg.Network.RemoveNetns(sb.meta.NetnsPath); err != nil {
		return fmt.Errorf("remove network namespace of sandbox %s: %w", sb.meta.ID, err)
	}
	return nil
}

// stopPause kills the pause task and waits until its exit is recorded.
func (s *service) stopPause(ctx context.Context, sb *sandbox) error {
	cc, err := s.client.LoadContainer(ctx, sb.meta.ID)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("load pause container: %w", err)
	}
	task, err := cc.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load pause task: %w", err)
	}
	if err := task.Kill(ctx, syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("kill pause task: %w", err)
	}
	sb.mu.Lock()
	exited := sb.exited
	sb.mu.Unlock()
	if exited != nil {
		select {
		case <-exited:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// No watcher (the pause task was found stopped at recovery): delete it here.
	if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete pause task: %w", err)
	}
	return nil
}

// RemovePodSandbox stops the sandbox if needed, removes its containers and all its
// state. Removing an unknown sandbox succeeds.
func (s *service) RemovePodSandbox(ctx context.Context, req *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	ctx = s.ns(ctx)
	sb, err := s.store.sandbox(req.GetPodSandboxId())
	if errdefs.IsNotFound(err) {
		return &runtimeapi.RemovePodSandboxResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := s.stopSandbox(ctx, sb); err != nil {
		return nil, err
	}
	for _, c := range s.store.containersOf(sb.meta.ID) {
		if err := s.removeContainer(ctx, c); err != nil {
			return nil, err
		}
	}
	if cc, err := s.client.LoadContainer(ctx, sb.meta.ID); err == nil {
		if err := cc.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("delete pause container: %w", err)
		}
	} else if !errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("load pause container: %w", err)
	}
	if err := os.RemoveAll(s.sandboxDir(sb.meta.ID)); err != nil {
		return nil, fmt.Errorf("remove sandbox directory: %w", err)
	}
	s.store.deleteSandbox(sb.meta.ID)
	s.sandboxEvent(sb, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT)
	klog.FromContext(ctx).V(2).Info("Removed pod sandbox", "podSandboxID", sb.meta.ID)
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

// PodSandboxStatus reports one sandbox.
func (s *service) PodSandboxStatus(ctx context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	sb, err := s.store.sandbox(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	st := sandboxStatus(sb)
	resp := &runtimeapi.PodSandboxStatusResponse{Status: st}
	if req.GetVerbose() {
		resp.Info = map[string]string{"info": fmt.Sprintf(`{"netns":%q,"cgroupsPath":%q}`, sb.meta.NetnsPath, sb.meta.CgroupsPath)}
	}
	return resp, nil
}

// sandboxStatus builds the CRI status of a sandbox.
func sandboxStatus(sb *sandbox) *runtimeapi.PodSandboxStatus {
	cfg := sb.meta.config
	st := &runtimeapi.PodSandboxStatus{
		Id:          sb.meta.ID,
		Metadata:    cfg.GetMetadata(),
		State:       sb.State(),
		CreatedAt:   sb.meta.CreatedAt,
		Network:     &runtimeapi.PodSandboxNetworkStatus{},
		Labels:      cfg.GetLabels(),
		Annotations: cfg.GetAnnotations(),
		Linux: &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{
			Options: cfg.GetLinux().GetSecurityContext().GetNamespaceOptions(),
		}},
	}
	if len(sb.meta.IPs) > 0 {
		st.Network.Ip = sb.meta.IPs[0]
		for _, ip := range sb.meta.IPs[1:] {
			st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtimeapi.PodIP{Ip: ip})
		}
	}
	return st
}

// ListPodSandbox lists sandboxes matching the filter (ID prefix, state, labels).
func (s *service) ListPodSandbox(ctx context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	f := req.GetFilter()
	resp := &runtimeapi.ListPodSandboxResponse{}
	for _, sb := range s.store.listSandboxes() {
		cfg := sb.meta.config
		state := sb.State()
		if f.GetId() != "" && !strings.HasPrefix(sb.meta.ID, f.GetId()) {
			continue
		}
		if f.GetState() != nil && f.GetState().GetState() != state {
			continue
		}
		if !labelsMatch(cfg.GetLabels(), f.GetLabelSelector()) {
			continue
		}
		resp.Items = append(resp.Items, &runtimeapi.PodSandbox{
			Id:          sb.meta.ID,
			Metadata:    cfg.GetMetadata(),
			State:       state,
			CreatedAt:   sb.meta.CreatedAt,
			Labels:      cfg.GetLabels(),
			Annotations: cfg.GetAnnotations(),
		})
	}
	return resp, nil
}

func labelsMatch(labels, selector map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// writeSandboxFiles writes the hostname, hosts and resolv.conf files containers mount.
func writeSandboxFiles(dir string, cfg *runtimeapi.PodSandboxConfig, ips []string) error {
	hostname := cfg.GetHostname()
	if hostname == "" || hostNetwork(cfg) {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("host name: %w", err)
		}
		hostname = h
	}
	var hosts []byte
	if hostNetwork(cfg) {
		data, err := os.ReadFile("/etc/hosts")
		if err != nil {
			return fmt.Errorf("read host /etc/hosts: %w", err)
		}
		hosts = data
	} else {
		h := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
		if len(ips) > 0 {
			h += ips[0] + "\t" + hostname + "\n"
		}
		hosts = []byte(h)
	}
	resolv, err := resolvConf(cfg.GetDnsConfig())
	if err != nil {
		return err
	}
	files := map[string][]byte{"hostname": []byte(hostname + "\n"), "hosts": hosts, "resolv.conf": resolv}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("write sandbox %s: %w", name, err)
		}
	}
	return nil
}

// resolvConf renders the pod's DNS config, or copies the host's when it has none.
func resolvConf(dns *runtimeapi.DNSConfig) ([]byte, error) {
	if len(dns.GetServers()) == 0 && len(dns.GetSearches()) == 0 && len(dns.GetOptions()) == 0 {
		data, err := os.ReadFile("/etc/resolv.conf")
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("read host resolv.conf: %w", err)
		}
		return data, nil
	}
	var b strings.Builder
	if len(dns.GetSearches()) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(dns.GetSearches(), " "))
	}
	for _, srv := range dns.GetServers() {
		fmt.Fprintf(&b, "nameserver %s\n", srv)
	}
	if len(dns.GetOptions()) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(dns.GetOptions(), " "))
	}
	return []byte(b.String()), nil
}
