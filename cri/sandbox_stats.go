package cri

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/skiff-sh/skiff/network"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// defaultPodInterface is the interface CNI plugins create in the pod.
const defaultPodInterface = "eth0"

// PodSandboxStats reports one pod: the sum of its containers' usage and its network
// interfaces' counters.
func (s *service) PodSandboxStats(ctx context.Context, req *runtimeapi.PodSandboxStatsRequest) (*runtimeapi.PodSandboxStatsResponse, error) {
	ctx = s.ns(ctx)
	sb, err := s.store.sandbox(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	st, err := s.sandboxStats(ctx, sb, s.snapshotterRoot(ctx))
	if err != nil {
		return nil, err
	}
	return &runtimeapi.PodSandboxStatsResponse{Stats: st}, nil
}

// ListPodSandboxStats reports the pods matching the filter.
func (s *service) ListPodSandboxStats(ctx context.Context, req *runtimeapi.ListPodSandboxStatsRequest) (*runtimeapi.ListPodSandboxStatsResponse, error) {
	ctx = s.ns(ctx)
	f := req.GetFilter()
	root := s.snapshotterRoot(ctx)
	resp := &runtimeapi.ListPodSandboxStatsResponse{}
	for _, sb := range s.store.listSandboxes() {
		if f.GetId() != "" && !strings.HasPrefix(sb.meta.ID, f.GetId()) ||
			!labelsMatch(sb.meta.config.GetLabels(), f.GetLabelSelector()) {
			continue
		}
		st, err := s.sandboxStats(ctx, sb, root)
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

func (s *service) sandboxStats(ctx context.Context, sb *sandbox, fsRoot string) (*runtimeapi.PodSandboxStats, error) {
	cfg := sb.meta.config
	now := time.Now().UnixNano()
	linux := &runtimeapi.LinuxPodSandboxStats{
		Cpu:    &runtimeapi.CpuUsage{Timestamp: now},
		Memory: &runtimeapi.MemoryUsage{Timestamp: now},
	}
	for _, c := range s.store.containersOf(sb.meta.ID) {
		cs, err := s.containerStats(ctx, c, fsRoot)
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		linux.Containers = append(linux.Containers, cs)
		addUsage(linux, cs)
	}
	if sb.State() == runtimeapi.PodSandboxState_SANDBOX_READY && sb.meta.NetnsPath != "" {
		if usage, err := netUsage(sb.meta.NetnsPath, now); err == nil {
			linux.Network = usage
		}
	}
	return &runtimeapi.PodSandboxStats{
		Attributes: &runtimeapi.PodSandboxAttributes{
			Id: sb.meta.ID, Metadata: cfg.GetMetadata(), Labels: cfg.GetLabels(), Annotations: cfg.GetAnnotations(),
		},
		Linux: linux,
	}, nil
}

// addUsage adds one container's CPU and memory to the pod's totals.
func addUsage(pod *runtimeapi.LinuxPodSandboxStats, c *runtimeapi.ContainerStats) {
	add := func(sum **runtimeapi.UInt64Value, v *runtimeapi.UInt64Value) {
		if v == nil {
			return
		}
		if *sum == nil {
			*sum = &runtimeapi.UInt64Value{}
		}
		(*sum).Value += v.GetValue()
	}
	add(&pod.Cpu.UsageCoreNanoSeconds, c.GetCpu().GetUsageCoreNanoSeconds())
	add(&pod.Memory.UsageBytes, c.GetMemory().GetUsageBytes())
	add(&pod.Memory.WorkingSetBytes, c.GetMemory().GetWorkingSetBytes())
	add(&pod.Memory.RssBytes, c.GetMemory().GetRssBytes())
	add(&pod.Memory.PageFaults, c.GetMemory().GetPageFaults())
	add(&pod.Memory.MajorPageFaults, c.GetMemory().GetMajorPageFaults())
}

// netUsage reads the interface counters of the network namespace at netnsPath. It
// reads /proc/thread-self/net/dev from inside it rather than /sys/class/net/*/statistics:
// sysfs shows the interfaces of the namespace that mounted it, whatever namespace the
// reader is in. The file shows the namespace it was opened in, even once read outside.
func netUsage(netnsPath string, now int64) (*runtimeapi.NetworkUsage, error) {
	var f *os.File
	// /proc/thread-self/net is the network namespace of the thread that opens it.
	err := network.InNetns(netnsPath, func() (err error) {
		f, err = os.Open("/proc/thread-self/net/dev")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read pod network counters: %w", err)
	}
	defer f.Close()
	usage := &runtimeapi.NetworkUsage{Timestamp: now}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		iface, ok := parseNetDevLine(sc.Text())
		if !ok || iface.Name == "lo" {
			continue
		}
		usage.Interfaces = append(usage.Interfaces, iface)
		if iface.Name == defaultPodInterface {
			usage.DefaultInterface = iface
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read pod network counters: %w", err)
	}
	return usage, nil
}

// parseNetDevLine parses one interface line of /proc/net/dev:
//
//	eth0: rx_bytes rx_packets rx_errs rx_drop rx_fifo rx_frame rx_compressed rx_multicast tx_bytes tx_packets tx_errs ...
func parseNetDevLine(line string) (*runtimeapi.NetworkInterfaceUsage, bool) {
	name, counters, ok := strings.Cut(line, ":")
	if !ok {
		return nil, false // a header line
	}
	fields := strings.Fields(counters)
	if len(fields) < 11 {
		return nil, false
	}
	var v [11]uint64
	for _, i := range []int{0, 2, 8, 10} {
		n, err := strconv.ParseUint(fields[i], 10, 64)
		if err != nil {
			return nil, false
		}
		v[i] = n
	}
	return &runtimeapi.NetworkInterfaceUsage{
		Name:     strings.TrimSpace(name),
		RxBytes:  &runtimeapi.UInt64Value{Value: v[0]},
		RxErrors: &runtimeapi.UInt64Value{Value: v[2]},
		TxBytes:  &runtimeapi.UInt64Value{Value: v[8]},
		TxErrors: &runtimeapi.UInt64Value{Value: v[10]},
	}, true
}
