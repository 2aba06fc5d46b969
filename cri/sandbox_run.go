package cri

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/skiff-sh/skiff/network"
)

// RunPodSandbox creates the pod's namespaces, attaches the network one through CNI,
// and writes hostname/hosts/resolv.conf. The namespaces are held by bind mounts, and a
// shared PID namespace by a pause process (sandbox_pidns.go); with AlwaysPause, all of
// them by a pause container, as containerd's CRI does.
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
	pause := s.cfg.AlwaysPause
	if !pause {
		if err := checkPodSysctls(cfg.GetLinux().GetSysctls(), hostNetwork(cfg), hostIPC(cfg)); err != nil {
			return nil, err
		}
	}
	sb := &sandbox{
		meta:  sandboxMeta{ID: newID(), Name: sandboxName(md), CreatedAt: nowNano(), config: cfg, Pinned: !pause},
		state: runtimeapi.PodSandboxState_SANDBOX_NOTREADY,
	}
	meta := &sb.meta
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
	parent := cfg.GetLinux().GetCgroupParent()
	if parent == "" {
		parent = s.cfg.CgroupParent
	}
	meta.CgroupsPath = path.Join(parent, meta.ID)
	var err error
	if meta.Config, err = proto.Marshal(cfg); err != nil {
		return nil, fmt.Errorf("encode sandbox config: %w", err)
	}

	timing := newSteps()
	if err := s.makeSandboxState(meta); err != nil {
		return nil, err
	}
	undo = append(undo, func() { _ = s.releaseSandboxState(context.WithoutCancel(ctx), meta.ID) })
	timing.done("shm")
	// CNI ADD runs while the rest of the sandbox is made: it only needs the netns.
	joinNetwork := func() error { return nil }
	if !hostNetwork(cfg) {
		if err := s.createNetns(meta, &undo); err != nil {
			return nil, err
		}
		joinNetwork = s.attachPodNetwork(ctx, meta, &undo, timing)
	}
	timing.done("netns")
	if pause {
		err = s.runPauseSandbox(ctx, sb, joinNetwork, &undo, timing)
	} else {
		err = s.runPinnedSandbox(ctx, sb, joinNetwork, &undo, timing)
	}
	if err != nil {
		return nil, err
	}
	s.store.addSandbox(sb)
	s.sandboxEvent(sb, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT)
	s.sandboxEvent(sb, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT)
	logger.V(2).Info("Started pod sandbox", append([]any{"ips", meta.IPs, "pause", pause}, timing.keysAndValues()...)...)
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: meta.ID}, nil
}

// makeSandboxState creates the sandbox's state directory with its /dev/shm tmpfs (unless
// the pod uses the host's IPC namespace).
func (s *service) makeSandboxState(meta *sandboxMeta) error {
	if hostIPC(meta.config) {
		if err := os.MkdirAll(s.sandboxStateDir(meta.ID), 0o700); err != nil {
			return fmt.Errorf("create sandbox state directory: %w", err)
		}
		return nil
	}
	return s.mountSandboxShm(meta.ID)
}

// runPauseSandbox makes the pause container and its task while the network comes up
// (joinNetwork waits for it), then starts the task.
func (s *service) runPauseSandbox(ctx context.Context, sb *sandbox, joinNetwork func() error, undo *[]func(), timing *steps) error {
	cc, task, err := s.createPause(ctx, sb, undo, timing)
	if err = errors.Join(err, joinNetwork()); err != nil {
		return err
	}
	timing.done("networkWait")
	if err := writeSandboxFiles(s.sandboxDir(sb.meta.ID), sb.meta.config, sb.meta.IPs); err != nil {
		return err
	}
	timing.done("files")
	if err := s.startPause(ctx, sb, cc, task); err != nil {
		return err
	}
	timing.done("pauseTaskStart")
	return nil
}

// runPinnedSandbox pins the sandbox's IPC and UTS namespaces, applies its sysctls and
// starts its PID namespace holder while the network comes up, then records the sandbox
// in containerd.
func (s *service) runPinnedSandbox(ctx context.Context, sb *sandbox, joinNetwork func() error, undo *[]func(), timing *steps) error {
	meta := &sb.meta
	cfg := meta.config
	pins := s.sandboxPins(meta.ID)
	if hostIPC(cfg) {
		pins.IPC = ""
	}
	if hostNetwork(cfg) {
		pins.UTS = "" // a host-network pod has the node's hostname, as kubelet expects
	}
	err := pinNamespaces(s.sandboxStateDir(meta.ID), pins, cfg.GetHostname(), cfg.GetLinux().GetSysctls())
	if err == nil {
		meta.Pins = pins
		err = setNetSysctls(meta.NetnsPath, cfg.GetLinux().GetSysctls())
	}
	if err == nil && sharesPID(cfg) {
		if err = s.startPIDHolder(ctx, sb); err == nil {
			*undo = append(*undo, func() { _ = s.stopPIDHolder(context.WithoutCancel(ctx), sb) })
		}
	}
	timing.done("namespaces")
	if err = errors.Join(err, joinNetwork()); err != nil {
		return err
	}
	timing.done("networkWait")
	if err := writeSandboxFiles(s.sandboxDir(meta.ID), cfg, meta.IPs); err != nil {
		return err
	}
	timing.done("files")
	if err := s.createSandboxRecord(ctx, meta); err != nil {
		return err
	}
	*undo = append(*undo, func() { _ = s.client.ContainerService().Delete(context.WithoutCancel(ctx), meta.ID) })
	timing.done("record")
	sb.setState(runtimeapi.PodSandboxState_SANDBOX_READY)
	return nil
}

// createSandboxRecord records a sandbox without a pause container in containerd, as a
// container that runs nothing, so that it is found again after a restart.
func (s *service) createSandboxRecord(ctx context.Context, meta *sandboxMeta) error {
	ext, err := jsonAny("SandboxMetadata", meta)
	if err != nil {
		return err
	}
	// No snapshot, so nothing for the client's temporary lease to protect.
	err = s.newContainerRecord(ctx, meta.ID,
		// containerd wants a runtime and a spec on every container; nothing runs this one.
		containerd.WithRuntime(runcRuntimeName, nil),
		containerd.WithSpec(&oci.Spec{Version: specs.Version}),
		containerd.WithContainerLabels(map[string]string{labelKind: kindSandbox}),
		containerd.WithContainerExtension(extMetadata, ext),
	)
	if err != nil {
		return fmt.Errorf("record sandbox in containerd: %w", err)
	}
	return nil
}

// setNetSysctls sets the net.* sysctls in the pod's network namespace; a pod on the host
// network has none (checkPodSysctls refused them).
func setNetSysctls(netnsPath string, sysctls map[string]string) error {
	var net []string
	for name := range sysctls {
		if sysctlNamespace(name) == "net" {
			net = append(net, name)
		}
	}
	if len(net) == 0 || netnsPath == "" {
		return nil
	}
	return network.InNetns(netnsPath, func() error {
		for _, name := range net {
			if err := writeSysctl(name, sysctls[name]); err != nil {
				return err
			}
		}
		return nil
	})
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
