package cri

import (
	"context"
	"fmt"
	"strings"
	"time"

	cg1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	cg2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ContainerStats reports one container's CPU, memory and writable layer usage.
func (s *service) ContainerStats(ctx context.Context, req *runtimeapi.ContainerStatsRequest) (*runtimeapi.ContainerStatsResponse, error) {
	ctx = s.ns(ctx)
	c, err := s.store.container(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	st, err := s.containerStats(ctx, c, s.snapshotterRoot(ctx))
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ContainerStatsResponse{Stats: st}, nil
}

// ListContainerStats reports the stats of the containers matching the filter.
func (s *service) ListContainerStats(ctx context.Context, req *runtimeapi.ListContainerStatsRequest) (*runtimeapi.ListContainerStatsResponse, error) {
	ctx = s.ns(ctx)
	f := req.GetFilter()
	root := s.snapshotterRoot(ctx)
	resp := &runtimeapi.ListContainerStatsResponse{}
	for _, c := range s.store.listContainers() {
		if f.GetId() != "" && !strings.HasPrefix(c.meta.ID, f.GetId()) ||
			f.GetPodSandboxId() != "" && !strings.HasPrefix(c.meta.SandboxID, f.GetPodSandboxId()) ||
			!labelsMatch(c.meta.config.GetLabels(), f.GetLabelSelector()) {
			continue
		}
		st, err := s.containerStats(ctx, c, root)
		if errdefs.IsNotFound(err) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		resp.Stats = append(resp.Stats, st)
	}
	return resp, nil
}

func (s *service) containerStats(ctx context.Context, c *container, fsRoot string) (*runtimeapi.ContainerStats, error) {
	cfg := c.meta.config
	now := time.Now().UnixNano()
	st := &runtimeapi.ContainerStats{
		Attributes: &runtimeapi.ContainerAttributes{
			Id: c.meta.ID, Metadata: cfg.GetMetadata(), Labels: cfg.GetLabels(), Annotations: cfg.GetAnnotations(),
		},
		Cpu:    &runtimeapi.CpuUsage{Timestamp: now},
		Memory: &runtimeapi.MemoryUsage{Timestamp: now},
	}
	if usage, err := s.client.SnapshotService(s.cfg.Snapshotter).Usage(ctx, c.meta.ID); err == nil {
		st.WritableLayer = &runtimeapi.FilesystemUsage{
			Timestamp:  now,
			FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: fsRoot},
			UsedBytes:  &runtimeapi.UInt64Value{Value: uint64(usage.Size)},
			InodesUsed: &runtimeapi.UInt64Value{Value: uint64(usage.Inodes)},
		}
	}
	if c.Status().State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return st, nil // no cgroup to read
	}
	cc, err := s.client.LoadContainer(ctx, c.meta.ID)
	if err != nil {
		return nil, fmt.Errorf("load container: %w", err)
	}
	task, err := cc.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return st, nil // exited meanwhile
	}
	if err != nil {
		return nil, fmt.Errorf("load task: %w", err)
	}
	m, err := task.Metrics(ctx)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return st, nil
		}
		return nil, fmt.Errorf("task metrics: %w", err)
	}
	data, err := typeurl.UnmarshalAny(m.Data)
	if err != nil {
		return nil, fmt.Errorf("decode task metrics: %w", err)
	}
	if ts := m.Timestamp.AsTime(); !ts.IsZero() {
		st.Cpu.Timestamp, st.Memory.Timestamp = ts.UnixNano(), ts.UnixNano()
	}
	fillUsage(st, data)
	return st, nil
}

// fillUsage copies cgroup v1 or v2 metrics into CRI usage, with the kubelet's working
// set definition (usage minus inactive file pages).
func fillUsage(st *runtimeapi.ContainerStats, data any) {
	var cpuNanos, usage, inactive, rss, faults, majFaults uint64
	switch m := data.(type) {
	case *cg1.Metrics:
		cpuNanos = m.GetCPU().GetUsage().GetTotal()
		mem := m.GetMemory()
		usage, inactive, rss = mem.GetUsage().GetUsage(), mem.GetTotalInactiveFile(), mem.GetTotalRSS()
		faults, majFaults = mem.GetTotalPgFault(), mem.GetTotalPgMajFault()
	case *cg2.Metrics:
		cpuNanos = m.GetCPU().GetUsageUsec() * 1000
		mem := m.GetMemory()
		usage, inactive, rss = mem.GetUsage(), mem.GetInactiveFile(), mem.GetAnon()
		faults, majFaults = mem.GetPgfault(), mem.GetPgmajfault()
	default:
		return
	}
	workingSet := usage
	if inactive < workingSet {
		workingSet -= inactive
	} else {
		workingSet = 0
	}
	st.Cpu.UsageCoreNanoSeconds = &runtimeapi.UInt64Value{Value: cpuNanos}
	st.Memory.UsageBytes = &runtimeapi.UInt64Value{Value: usage}
	st.Memory.WorkingSetBytes = &runtimeapi.UInt64Value{Value: workingSet}
	st.Memory.RssBytes = &runtimeapi.UInt64Value{Value: rss}
	st.Memory.PageFaults = &runtimeapi.UInt64Value{Value: faults}
	st.Memory.MajorPageFaults = &runtimeapi.UInt64Value{Value: majFaults}
}

// UpdateContainerResources changes a container's CPU and memory limits: in its stored
// spec (so a restart keeps them) and, when it runs, in its cgroup.
func (s *service) UpdateContainerResources(ctx context.Context, req *runtimeapi.UpdateContainerResourcesRequest) (*runtimeapi.UpdateContainerResourcesResponse, error) {
	ctx = s.ns(ctx)
	c, err := s.store.container(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	if req.GetLinux() == nil {
		return &runtimeapi.UpdateContainerResourcesResponse{}, nil
	}
	cc, err := s.client.LoadContainer(ctx, c.meta.ID)
	if err != nil {
		return nil, fmt.Errorf("load container: %w", err)
	}
	spec, err := cc.Spec(ctx)
	if err != nil {
		return nil, fmt.Errorf("container spec: %w", err)
	}
	if err := withResources(req.GetLinux(), s.oom)(ctx, nil, nil, spec); err != nil {
		return nil, err
	}
	if err := cc.Update(ctx, func(_ context.Context, _ *containerd.Client, cur *containers.Container) error {
		encoded, err := typeurl.MarshalAny(spec)
		if err != nil {
			return err
		}
		cur.Spec = encoded
		return nil
	}); err != nil {
		return nil, fmt.Errorf("store updated spec: %w", err)
	}
	if c.Status().State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return &runtimeapi.UpdateContainerResourcesResponse{}, nil
	}
	task, err := cc.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return &runtimeapi.UpdateContainerResourcesResponse{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load task: %w", err)
	}
	if err := task.Update(ctx, containerd.WithResources(spec.Linux.Resources)); err != nil {
		return nil, fmt.Errorf("update container resources: %w", err)
	}
	return &runtimeapi.UpdateContainerResourcesResponse{}, nil
}
