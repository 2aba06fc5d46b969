package agent

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
	"k8s.io/utils/ptr"
)

// serveStatsSummary is GET /stats/summary: kubelet's Summary API, with kubelet's
// only_cpu_and_memory=true for callers that want usage alone (no filesystem walks).
func (a *Agent) serveStatsSummary(w http.ResponseWriter, r *http.Request) {
	summary, err := a.statsSummary(r.Context(), r.URL.Query().Get("only_cpu_and_memory") == "true")
	if err != nil {
		http.Error(w, fmt.Sprintf("Internal Error: %v", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(summary); err != nil {
		klog.FromContext(r.Context()).V(4).Info("Writing the stats summary", "err", err)
	}
}

// statsSummary gathers the node's and its pods' usage. Summaries are built one at a time
// because each moves the CPU samples that usageNanoCores is computed from.
func (a *Agent) statsSummary(ctx context.Context, onlyCPUAndMemory bool) (*statsapi.Summary, error) {
	a.cpuRates.begin()
	defer a.cpuRates.end()
	now := time.Now()
	// fsInfo stays nil when only usage is asked for; else it is asked once, since the
	// runtime may walk every snapshot to answer.
	var fsInfo *runtimeapi.ImageFsInfoResponse
	if !onlyCPUAndMemory {
		info, err := a.cfg.Images.ImageFsInfo(ctx)
		if err != nil {
			return nil, fmt.Errorf("image filesystem info: %w", err)
		}
		fsInfo = cmp.Or(info, &runtimeapi.ImageFsInfoResponse{})
	}
	node, err := a.nodeStats(ctx, now, fsInfo)
	if err != nil {
		return nil, err
	}
	pods, err := a.podStats(ctx, now, fsInfo)
	if err != nil {
		return nil, err
	}
	return &statsapi.Summary{Node: *node, Pods: pods}, nil
}

// cpuRates keeps the previous CPU sample of the node, each pod and each container, from
// which the next summary computes usageNanoCores, as kubelet's CRI stats provider does.
// Samples of containers that are gone are dropped when a summary ends. The zero value is
// ready to use.
type cpuRates struct {
	mu   sync.Mutex
	last map[string]cpuSample
	next map[string]cpuSample
}

type cpuSample struct {
	at    time.Time
	usage uint64
}

func (c *cpuRates) begin() {
	c.mu.Lock()
	c.next = map[string]cpuSample{}
}

func (c *cpuRates) end() {
	c.last, c.next = c.next, nil
	c.mu.Unlock()
}

// nanoCores records a sample and returns the usage rate since the previous one, nil for
// the first sample of a key (no rate yet) or a counter that went back.
func (c *cpuRates) nanoCores(key string, at time.Time, usage uint64) *uint64 {
	prev, ok := c.last[key]
	if ok && !at.After(prev.at) {
		c.next[key] = prev // the same sample again: keep measuring from the older one
		return nil
	}
	c.next[key] = cpuSample{at: at, usage: usage}
	if !ok || usage < prev.usage {
		return nil
	}
	rate := float64(usage-prev.usage) / float64(at.Sub(prev.at).Nanoseconds()) * float64(time.Second)
	return ptr.To(uint64(rate))
}

// nodeStats is the node part: CPU, memory, swap, network and rlimit from /proc, the
// agent's filesystem from statfs of RootDir, the image filesystem from the runtime's
// fsInfo (without it, CPU and memory only).
func (a *Agent) nodeStats(ctx context.Context, now time.Time, fsInfo *runtimeapi.ImageFsInfoResponse) (*statsapi.NodeStats, error) {
	boot, err := bootTime(filepath.Join(procDir, "stat"))
	if err != nil {
		return nil, err
	}
	usage, err := nodeCPUUsage(filepath.Join(procDir, "stat"))
	if err != nil {
		return nil, err
	}
	mem, swap, err := nodeMemory(filepath.Join(procDir, "meminfo"), filepath.Join(procDir, "vmstat"), now)
	if err != nil {
		return nil, err
	}
	node := &statsapi.NodeStats{
		NodeName:  a.cfg.NodeName,
		StartTime: metav1.NewTime(boot),
		CPU: &statsapi.CPUStats{
			Time: metav1.NewTime(now), UsageCoreNanoSeconds: ptr.To(usage), UsageNanoCores: a.cpuRates.nanoCores("node", now, usage),
		},
		Memory: mem,
		Swap:   swap,
	}
	if fsInfo == nil {
		return node, nil
	}
	return node, a.addNodeFs(ctx, node, fsInfo, now)
}

// addNodeFs adds network, rlimit and the filesystems to the node's stats.
func (a *Agent) addNodeFs(ctx context.Context, node *statsapi.NodeStats, fsInfo *runtimeapi.ImageFsInfoResponse, now time.Time) error {
	logger := klog.FromContext(ctx)
	var err error
	if node.Network, err = nodeNetwork(filepath.Join(procDir, "net", "dev"), filepath.Join(procDir, "net", "route"), now); err != nil {
		logger.V(4).Info("No node network stats", "err", err)
	}
	if node.Rlimit, err = nodeRlimit(filepath.Join(procDir, "sys", "kernel", "pid_max"), filepath.Join(procDir, "loadavg"), now); err != nil {
		logger.V(4).Info("No node rlimit stats", "err", err)
	}
	rootFs, err := statfsNearest(a.cfg.RootDir)
	if err != nil {
		return err
	}
	node.Fs = rootFs.stats(now)
	imageFs, containerFs := a.runtimeFs(ctx, fsInfo, now)
	node.Runtime = &statsapi.RuntimeStats{ImageFs: imageFs, ContainerFs: containerFs}
	return nil
}

// runtimeFs is the runtime's image filesystem (and its container filesystem, the same
// one unless the runtime splits them): usage from CRI ImageFsInfo, size from statfs of
// the mount point the runtime names.
func (a *Agent) runtimeFs(ctx context.Context, info *runtimeapi.ImageFsInfoResponse, now time.Time) (imageFs, containerFs *statsapi.FsStats) {
	imageFs = a.criFsStats(ctx, info.GetImageFilesystems(), now)
	containerFs = imageFs
	if cfs := info.GetContainerFilesystems(); len(cfs) > 0 {
		containerFs = a.criFsStats(ctx, cfs, now)
	}
	return imageFs, containerFs
}

// criFsStats turns the first CRI filesystem usage into FsStats.
func (a *Agent) criFsStats(ctx context.Context, usages []*runtimeapi.FilesystemUsage, now time.Time) *statsapi.FsStats {
	if len(usages) == 0 {
		return nil
	}
	u := usages[0]
	capacity := a.mountCapacity(ctx, u.GetFsId().GetMountpoint())
	at := now
	if u.Timestamp > 0 {
		at = time.Unix(0, u.Timestamp)
	}
	return capacity.with(at, criUint64(u.GetUsedBytes()), criUint64(u.GetInodesUsed()))
}

// mountCapacity statfs-es a filesystem the runtime names; an unknown one has no size.
func (a *Agent) mountCapacity(ctx context.Context, mountpoint string) fsCapacity {
	if mountpoint == "" {
		return fsCapacity{}
	}
	c, err := statfsNearest(mountpoint)
	if err != nil {
		klog.FromContext(ctx).V(4).Info("No size for runtime filesystem", "mountpoint", mountpoint, "err", err)
	}
	return c
}

func criUint64(v *runtimeapi.UInt64Value) *uint64 {
	if v == nil {
		return nil
	}
	return ptr.To(v.GetValue())
}

// runtimeSnapshot is what the runtime reports about this node's pods, listed once per
// summary.
type runtimeSnapshot struct {
	sandboxes  []*runtimeapi.PodSandbox
	containers []*runtimeapi.Container
	cstats     map[string]*runtimeapi.ContainerStats
	pstats     map[string]*runtimeapi.PodSandboxStats
}

func (a *Agent) listRuntimeStats(ctx context.Context) (*runtimeSnapshot, error) {
	rt, sel := a.cfg.Runtime, map[string]string{labelNode: a.cfg.NodeName}
	var snap runtimeSnapshot
	var err error
	if snap.sandboxes, err = rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: sel}); err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	if snap.containers, err = rt.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: sel}); err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	cstats, err := rt.ListContainerStats(ctx, &runtimeapi.ContainerStatsFilter{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("list container stats: %w", err)
	}
	snap.cstats = make(map[string]*runtimeapi.ContainerStats, len(cstats))
	for _, s := range cstats {
		snap.cstats[s.GetAttributes().GetId()] = s
	}
	pstats, err := rt.ListPodSandboxStats(ctx, &runtimeapi.PodSandboxStatsFilter{LabelSelector: sel})
	// Pod-level stats are optional in CRI; without them pods get their containers' sums.
	if err != nil && status.Code(err) != codes.Unimplemented {
		return nil, fmt.Errorf("list pod sandbox stats: %w", err)
	}
	snap.pstats = make(map[string]*runtimeapi.PodSandboxStats, len(pstats))
	for _, s := range pstats {
		snap.pstats[s.GetAttributes().GetId()] = s
	}
	return &snap, nil
}

// podFs is what the filesystem parts of pod stats are measured against, read once.
type podFs struct {
	root, images, logs fsCapacity
}

// podStats reports each pod that has a sandbox on this node, from its newest sandbox
// (a ready one first) and that sandbox's containers; filesystems only with fsInfo.
func (a *Agent) podStats(ctx context.Context, now time.Time, fsInfo *runtimeapi.ImageFsInfoResponse) ([]statsapi.PodStats, error) {
	snap, err := a.listRuntimeStats(ctx)
	if err != nil {
		return nil, err
	}
	var fsc *podFs
	if fsInfo != nil {
		if fsc, err = a.podFilesystems(ctx, fsInfo); err != nil {
			return nil, err
		}
	}
	specs := map[types.UID]*v1.Pod{}
	for _, p := range a.source.list() {
		specs[p.UID] = p
	}
	out := []statsapi.PodStats{}
	for _, sb := range podSandboxes(snap.sandboxes) {
		ps := a.onePodStats(snap, sb, fsc, now)
		if fsc != nil {
			a.addPodStorage(ctx, &ps, specs[types.UID(ps.PodRef.UID)], *fsc, now)
		}
		out = append(out, ps)
	}
	return out, nil
}

// podFilesystems reads the sizes of the node, log and container filesystems.
func (a *Agent) podFilesystems(ctx context.Context, info *runtimeapi.ImageFsInfoResponse) (*podFs, error) {
	root, err := statfsNearest(a.cfg.RootDir)
	if err != nil {
		return nil, err
	}
	logs, err := statfsNearest(a.cfg.PodLogsDir)
	if err != nil {
		return nil, err
	}
	fsc := &podFs{root: root, logs: logs}
	if fs := info.GetContainerFilesystems(); len(fs) > 0 {
		fsc.images = a.mountCapacity(ctx, fs[0].GetFsId().GetMountpoint())
	} else if fs := info.GetImageFilesystems(); len(fs) > 0 {
		fsc.images = a.mountCapacity(ctx, fs[0].GetFsId().GetMountpoint())
	}
	return fsc, nil
}

// podSandboxes keeps one sandbox per pod UID: a ready one if there is one, else the
// newest; sorted by namespace and name for a stable answer.
func podSandboxes(all []*runtimeapi.PodSandbox) []*runtimeapi.PodSandbox {
	best := map[string]*runtimeapi.PodSandbox{}
	for _, sb := range all {
		uid := sb.GetMetadata().GetUid()
		if cur, ok := best[uid]; !ok || betterSandbox(sb, cur) {
			best[uid] = sb
		}
	}
	out := make([]*runtimeapi.PodSandbox, 0, len(best))
	for _, sb := range best {
		out = append(out, sb)
	}
	sort.Slice(out, func(i, j int) bool {
		x, y := out[i].GetMetadata(), out[j].GetMetadata()
		if x.GetNamespace() != y.GetNamespace() {
			return x.GetNamespace() < y.GetNamespace()
		}
		return x.GetName() < y.GetName()
	})
	return out
}

func betterSandbox(x, y *runtimeapi.PodSandbox) bool {
	xr, yr := x.State == runtimeapi.PodSandboxState_SANDBOX_READY, y.State == runtimeapi.PodSandboxState_SANDBOX_READY
	if xr != yr {
		return xr
	}
	return x.CreatedAt > y.CreatedAt
}

// sandboxContainers keeps, per container name, the running instance or else the newest,
// like kubelet, so exited attempts do not count twice.
func sandboxContainers(all []*runtimeapi.Container, sandboxID string) []*runtimeapi.Container {
	best := map[string]*runtimeapi.Container{}
	for _, c := range all {
		if c.PodSandboxId != sandboxID {
			continue
		}
		name := c.GetMetadata().GetName()
		if cur, ok := best[name]; !ok || betterContainer(c, cur) {
			best[name] = c
		}
	}
	out := make([]*runtimeapi.Container, 0, len(best))
	for _, c := range best {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetMetadata().GetName() < out[j].GetMetadata().GetName() })
	return out
}

func betterContainer(x, y *runtimeapi.Container) bool {
	xr, yr := x.State == runtimeapi.ContainerState_CONTAINER_RUNNING, y.State == runtimeapi.ContainerState_CONTAINER_RUNNING
	if xr != yr {
		return xr
	}
	return x.CreatedAt > y.CreatedAt
}

// onePodStats is a pod's CPU, memory and network with its containers' CPU, memory and,
// with fsc, writable layers.
func (a *Agent) onePodStats(snap *runtimeSnapshot, sb *runtimeapi.PodSandbox, fsc *podFs, now time.Time) statsapi.PodStats {
	md := sb.GetMetadata()
	ps := statsapi.PodStats{
		PodRef:     statsapi.PodReference{Name: md.GetName(), Namespace: md.GetNamespace(), UID: md.GetUid()},
		StartTime:  metav1.NewTime(time.Unix(0, sb.CreatedAt)),
		Containers: []statsapi.ContainerStats{},
	}
	for _, c := range sandboxContainers(snap.containers, sb.Id) {
		ps.Containers = append(ps.Containers, a.containerStats(c, snap.cstats[c.Id], fsc, now))
	}
	linux := snap.pstats[sb.Id].GetLinux()
	if linux.GetCpu() != nil {
		ps.CPU = a.cpuStats("pod/"+sb.Id, linux.GetCpu(), now)
	} else {
		ps.CPU = a.summedCPU("pod/"+sb.Id, ps.Containers, now)
	}
	if linux.GetMemory() != nil {
		ps.Memory = memoryStats(linux.GetMemory(), now)
	} else {
		ps.Memory = summedMemory(ps.Containers, now)
	}
	ps.Network = networkStats(linux.GetNetwork())
	return ps
}

// containerStats is one container's CPU, memory and (with fsc) writable layer from CRI;
// the layer lives on the runtime's container filesystem.
func (a *Agent) containerStats(c *runtimeapi.Container, st *runtimeapi.ContainerStats, fsc *podFs, now time.Time) statsapi.ContainerStats {
	cs := statsapi.ContainerStats{
		Name:      c.GetMetadata().GetName(),
		StartTime: metav1.NewTime(time.Unix(0, c.CreatedAt)),
	}
	if st.GetCpu() != nil {
		cs.CPU = a.cpuStats("container/"+c.Id, st.GetCpu(), now)
	}
	if st.GetMemory() != nil {
		cs.Memory = memoryStats(st.GetMemory(), now)
	}
	if layer := st.GetWritableLayer(); layer != nil && fsc != nil {
		cs.Rootfs = fsc.images.with(sampleTime(layer.GetTimestamp(), now), criUint64(layer.GetUsedBytes()), criUint64(layer.GetInodesUsed()))
	}
	return cs
}

// cpuStats converts CRI CPU usage; usageNanoCores comes from the runtime when it
// computes it, else from the previous sample.
func (a *Agent) cpuStats(key string, u *runtimeapi.CpuUsage, now time.Time) *statsapi.CPUStats {
	at := sampleTime(u.GetTimestamp(), now)
	cpu := &statsapi.CPUStats{Time: metav1.NewTime(at), UsageCoreNanoSeconds: criUint64(u.GetUsageCoreNanoSeconds())}
	if cpu.UsageCoreNanoSeconds == nil {
		return cpu
	}
	rate := a.cpuRates.nanoCores(key, at, *cpu.UsageCoreNanoSeconds)
	if v := u.GetUsageNanoCores(); v != nil {
		rate = ptr.To(v.GetValue())
	}
	cpu.UsageNanoCores = rate
	return cpu
}

func memoryStats(u *runtimeapi.MemoryUsage, now time.Time) *statsapi.MemoryStats {
	return &statsapi.MemoryStats{
		Time:            metav1.NewTime(sampleTime(u.GetTimestamp(), now)),
		AvailableBytes:  criUint64(u.GetAvailableBytes()),
		UsageBytes:      criUint64(u.GetUsageBytes()),
		WorkingSetBytes: criUint64(u.GetWorkingSetBytes()),
		RSSBytes:        criUint64(u.GetRssBytes()),
		PageFaults:      criUint64(u.GetPageFaults()),
		MajorPageFaults: criUint64(u.GetMajorPageFaults()),
	}
}

func sampleTime(ns int64, now time.Time) time.Time {
	if ns <= 0 {
		return now
	}
	return time.Unix(0, ns)
}

// summedCPU is a pod's CPU when the runtime reports none for the pod: its containers' sum.
func (a *Agent) summedCPU(key string, cs []statsapi.ContainerStats, now time.Time) *statsapi.CPUStats {
	var total uint64
	found := false
	for _, c := range cs {
		if c.CPU != nil && c.CPU.UsageCoreNanoSeconds != nil {
			total += *c.CPU.UsageCoreNanoSeconds
			found = true
		}
	}
	if !found {
		return nil
	}
	return &statsapi.CPUStats{Time: metav1.NewTime(now), UsageCoreNanoSeconds: ptr.To(total), UsageNanoCores: a.cpuRates.nanoCores(key, now, total)}
}

// summedMemory is a pod's memory when the runtime reports none for the pod.
func summedMemory(cs []statsapi.ContainerStats, now time.Time) *statsapi.MemoryStats {
	var usage, workingSet, rss uint64
	found := false
	for _, c := range cs {
		if c.Memory == nil {
			continue
		}
		found = true
		usage += ptr.Deref(c.Memory.UsageBytes, 0)
		workingSet += ptr.Deref(c.Memory.WorkingSetBytes, 0)
		rss += ptr.Deref(c.Memory.RSSBytes, 0)
	}
	if !found {
		return nil
	}
	return &statsapi.MemoryStats{Time: metav1.NewTime(now), UsageBytes: &usage, WorkingSetBytes: &workingSet, RSSBytes: &rss}
}

// networkStats converts the pod's interface counters; the default interface is also the
// top-level one, as in kubelet.
func networkStats(n *runtimeapi.NetworkUsage) *statsapi.NetworkStats {
	if n == nil {
		return nil
	}
	ns := &statsapi.NetworkStats{Time: metav1.NewTime(time.Unix(0, n.Timestamp))}
	for _, i := range n.GetInterfaces() {
		ns.Interfaces = append(ns.Interfaces, interfaceStats(i))
	}
	if d := n.GetDefaultInterface(); d != nil {
		ns.InterfaceStats = interfaceStats(d)
	}
	return ns
}

func interfaceStats(i *runtimeapi.NetworkInterfaceUsage) statsapi.InterfaceStats {
	return statsapi.InterfaceStats{
		Name:    i.GetName(),
		RxBytes: criUint64(i.GetRxBytes()), RxErrors: criUint64(i.GetRxErrors()),
		TxBytes: criUint64(i.GetTxBytes()), TxErrors: criUint64(i.GetTxErrors()),
	}
}

// addPodStorage adds what pods keep on the node's disks: each container's logs (its log
// directory, walked) and the pod's emptyDir volumes, then the sum of those and the
// writable layers as the pod's ephemeral storage, kubelet's definition.
func (a *Agent) addPodStorage(ctx context.Context, ps *statsapi.PodStats, spec *v1.Pod, fsc podFs, now time.Time) {
	logDir := a.podLogDir(&v1.Pod{ObjectMeta: metav1.ObjectMeta{
		Namespace: ps.PodRef.Namespace, Name: ps.PodRef.Name, UID: types.UID(ps.PodRef.UID),
	}})
	var eph usageSum
	for i := range ps.Containers {
		c := &ps.Containers[i]
		eph.add(c.Rootfs)
		c.Logs = dirUsage(ctx, filepath.Join(logDir, c.Name), fsc.logs, now)
		eph.add(c.Logs)
	}
	if spec != nil {
		for _, v := range spec.Spec.Volumes {
			vs, counts := a.emptyDirStats(ctx, spec, v, now)
			if vs == nil {
				continue
			}
			ps.VolumeStats = append(ps.VolumeStats, *vs)
			if counts {
				eph.add(&vs.FsStats)
			}
		}
	}
	ps.EphemeralStorage = fsc.root.with(now, ptr.To(eph.bytes), ptr.To(eph.inodes))
}

// emptyDirStats measures an emptyDir volume of the pod; counts says whether it takes
// node disk (memory-backed ones do not count towards ephemeral storage).
func (a *Agent) emptyDirStats(ctx context.Context, pod *v1.Pod, vol v1.Volume, now time.Time) (*statsapi.VolumeStats, bool) {
	if vol.EmptyDir == nil {
		return nil, false
	}
	a.vols.mu.Lock()
	dir, ok := a.vols.paths[pod.UID][vol.Name]
	a.vols.mu.Unlock()
	if !ok {
		return nil, false
	}
	capacity, err := statfsNearest(dir)
	if err != nil {
		klog.FromContext(ctx).V(4).Info("No size for emptyDir", "pod", klog.KObj(pod), "volume", vol.Name, "err", err)
	}
	fs := dirUsage(ctx, dir, capacity, now)
	if fs == nil {
		return nil, false
	}
	return &statsapi.VolumeStats{Name: vol.Name, FsStats: *fs}, vol.EmptyDir.Medium != v1.StorageMediumMemory
}

// usageSum adds up used bytes and inodes.
type usageSum struct{ bytes, inodes uint64 }

func (s *usageSum) add(fs *statsapi.FsStats) {
	if fs == nil {
		return
	}
	s.bytes += ptr.Deref(fs.UsedBytes, 0)
	s.inodes += ptr.Deref(fs.InodesUsed, 0)
}

// dirUsage walks dir like du: allocated blocks, hard links counted once, and one inode
// per file and directory. A missing dir uses nothing; files vanishing during the walk
// (log rotation) are skipped. nil when dir cannot be read.
func dirUsage(ctx context.Context, dir string, capacity fsCapacity, now time.Time) *statsapi.FsStats {
	var used, inodes uint64
	seen := map[uint64]bool{}
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		info, err := d.Info()
		if err != nil {
			return nil // removed since it was listed
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		if st.Nlink > 1 && !info.IsDir() {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		used += uint64(st.Blocks) * 512
		inodes++
		return nil
	})
	if err != nil {
		klog.FromContext(ctx).V(4).Info("Measuring disk usage", "dir", dir, "err", err)
		return nil
	}
	return capacity.with(now, ptr.To(used), ptr.To(inodes))
}
