package cri

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/skiff-sh/skiff/network"
)

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
