package agent

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
	"k8s.io/utils/ptr"
)

func writeFixture(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNodeStatsReaders(t *testing.T) {
	dir := t.TempDir()
	stat := writeFixture(t, dir, "stat", "cpu  100 20 30 1000 50 5 5 10 0 0\ncpu0 100 20 30 1000 50 5 5 10 0 0\nbtime 1700000000\n")
	meminfo := writeFixture(t, dir, "meminfo", "MemTotal:        1000 kB\nMemFree:          200 kB\nInactive(file):   100 kB\nAnonPages:        300 kB\nSwapTotal:        50 kB\nSwapFree:         20 kB\n")
	vmstat := writeFixture(t, dir, "vmstat", "pgfault 77\npgmajfault 3\n")
	netDev := writeFixture(t, dir, "dev", "Inter-|   Receive                                                |  Transmit\n"+
		" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n"+
		"    lo: 500 5 0 0 0 0 0 0 500 5 0 0 0 0 0 0\n"+
		"  ens5: 1000 10 1 0 0 0 0 0 2000 20 2 0 0 0 0 0\n"+
		"veth12: 9 9 9 9 9 9 9 9 9 9 9 9 9 9 9 9\n")
	route := writeFixture(t, dir, "route", "Iface\tDestination\tGateway\tFlags\n ens5\t00000000\t0100000A\t0003\n ens5\t0000000A\t00000000\t0001\n")
	pidMax := writeFixture(t, dir, "pid_max", "4194304\n")
	loadavg := writeFixture(t, dir, "loadavg", "0.00 0.01 0.05 2/523 12345\n")
	now := time.Now()

	usage, err := nodeCPUUsage(stat)
	if err != nil || usage != 170*uint64(time.Second)/userHZ {
		t.Errorf("cpu usage %d, %v; want 170 ticks = 1.7s", usage, err)
	}
	if boot, err := bootTime(stat); err != nil || boot.Unix() != 1700000000 {
		t.Errorf("boot time %v, %v", boot, err)
	}
	mem, swap, err := nodeMemory(meminfo, vmstat, now)
	if err != nil {
		t.Fatal(err)
	}
	// usage 800 KiB (not free), working set 700 KiB (less inactive file), available 300 KiB.
	if *mem.UsageBytes != 800<<10 || *mem.WorkingSetBytes != 700<<10 || *mem.AvailableBytes != 300<<10 ||
		*mem.RSSBytes != 300<<10 || *mem.PageFaults != 77 || *mem.MajorPageFaults != 3 {
		t.Errorf("memory %+v", mem)
	}
	if *swap.SwapUsageBytes != 30<<10 || *swap.SwapAvailableBytes != 20<<10 {
		t.Errorf("swap %+v", swap)
	}
	net, err := nodeNetwork(netDev, route, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(net.Interfaces) != 1 || net.Name != "ens5" || *net.RxBytes != 1000 || *net.RxErrors != 1 || *net.TxBytes != 2000 || *net.TxErrors != 2 {
		t.Errorf("network %+v (interfaces %+v)", net.InterfaceStats, net.Interfaces)
	}
	rl, err := nodeRlimit(pidMax, loadavg, now)
	if err != nil || *rl.MaxPID != 4194304 || *rl.NumOfRunningProcesses != 523 {
		t.Errorf("rlimit %+v, %v", rl, err)
	}
	if _, err := nodeCPUUsage(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing /proc/stat read as usage")
	}
}

func TestCPURates(t *testing.T) {
	var c cpuRates
	t0 := time.Unix(100, 0)
	c.begin()
	if r := c.nanoCores("x", t0, 1e9); r != nil {
		t.Errorf("first sample gave a rate %d", *r)
	}
	c.end()
	c.begin()
	if r := c.nanoCores("x", t0.Add(2*time.Second), 2e9); r == nil || *r != 5e8 {
		t.Errorf("1s of CPU over 2s: %v, want half a core", r)
	}
	c.end()
	c.begin() // "x" not sampled: it is forgotten
	c.end()
	c.begin()
	if r := c.nanoCores("x", t0.Add(3*time.Second), 3e9); r != nil {
		t.Errorf("rate from a forgotten sample: %d", *r)
	}
	c.end()
}

// summaryPod is a pod with an emptyDir, for the storage parts of the summary.
func summaryPod() *v1.Pod {
	return testPod("web", "uid-1", func(p *v1.Pod) {
		p.Spec.Volumes = []v1.Volume{{Name: "cache", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}}
		p.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "cache", MountPath: "/cache"}}
	})
}

func getSummary(t *testing.T, a *Agent, query string) *statsapi.Summary {
	t.Helper()
	rec := serve(a.kubeletHandler(), authed(httptest.NewRequest("GET", "/stats/summary"+query, nil)))
	if rec.Code != http.StatusOK {
		t.Fatalf("/stats/summary%s: %d %s", query, rec.Code, rec.Body.String())
	}
	var s statsapi.Summary
	if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil {
		t.Fatalf("decode summary: %v\n%s", err, rec.Body.String())
	}
	return &s
}

// runtimeIDs returns the one sandbox and one container the fake runtime holds.
func runtimeIDs(t *testing.T, env *testEnv) (sandbox, container string) {
	t.Helper()
	env.runtime.Lock()
	defer env.runtime.Unlock()
	for id := range env.runtime.Sandboxes {
		sandbox = id
	}
	for id := range env.runtime.Containers {
		container = id
	}
	if len(env.runtime.Sandboxes) != 1 || len(env.runtime.Containers) != 1 {
		t.Fatalf("want one sandbox and one container, runtime has %d and %d", len(env.runtime.Sandboxes), len(env.runtime.Containers))
	}
	return sandbox, container
}

func setContainerStats(env *testEnv, id string, at time.Time, cpu uint64) {
	env.runtime.SetFakeContainerStats([]*runtimeapi.ContainerStats{{
		Attributes: &runtimeapi.ContainerAttributes{Id: id},
		Cpu:        &runtimeapi.CpuUsage{Timestamp: at.UnixNano(), UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: cpu}},
		Memory: &runtimeapi.MemoryUsage{Timestamp: at.UnixNano(),
			UsageBytes: &runtimeapi.UInt64Value{Value: 6 << 20}, WorkingSetBytes: &runtimeapi.UInt64Value{Value: 5 << 20}},
		WritableLayer: &runtimeapi.FilesystemUsage{Timestamp: at.UnixNano(),
			UsedBytes: &runtimeapi.UInt64Value{Value: 4096}, InodesUsed: &runtimeapi.UInt64Value{Value: 3}},
	}})
}

func TestStatsSummary(t *testing.T) {
	env := newTestEnv(t, nil, summaryPod())
	h := env.agent.kubeletHandler()
	if rec := serve(h, httptest.NewRequest("GET", "/stats/summary", nil)); rec.Code != http.StatusForbidden {
		t.Errorf("/stats/summary without a client certificate: %d, want 403", rec.Code)
	}
	env.agent.cfg.ClientCAFile, _ = testCA(t)
	env.start()
	env.eventually("pod running", func() bool { return runningWithIP(env.getPod("web")) })
	sandboxID, containerID := runtimeIDs(t, env)

	t0 := time.Now().Add(-time.Minute).Truncate(time.Second)
	setContainerStats(env, containerID, t0, 1e9)
	env.runtime.SetFakePodSandboxStats([]*runtimeapi.PodSandboxStats{{
		Attributes: &runtimeapi.PodSandboxAttributes{Id: sandboxID},
		Linux: &runtimeapi.LinuxPodSandboxStats{
			Cpu:    &runtimeapi.CpuUsage{Timestamp: t0.UnixNano(), UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: 12e8}},
			Memory: &runtimeapi.MemoryUsage{Timestamp: t0.UnixNano(), WorkingSetBytes: &runtimeapi.UInt64Value{Value: 7 << 20}},
			Network: &runtimeapi.NetworkUsage{Timestamp: t0.UnixNano(),
				DefaultInterface: &runtimeapi.NetworkInterfaceUsage{Name: "eth0", RxBytes: &runtimeapi.UInt64Value{Value: 100}},
				Interfaces:       []*runtimeapi.NetworkInterfaceUsage{{Name: "eth0", RxBytes: &runtimeapi.UInt64Value{Value: 100}}}},
		},
	}})
	imageMount := t.TempDir()
	env.images.SetFakeFilesystemUsage([]*runtimeapi.FilesystemUsage{{
		Timestamp: t0.UnixNano(), FsId: &runtimeapi.FilesystemIdentifier{Mountpoint: imageMount},
		UsedBytes: &runtimeapi.UInt64Value{Value: 1 << 30}, InodesUsed: &runtimeapi.UInt64Value{Value: 100},
	}})
	pod := env.getPod("web")
	logFile := filepath.Join(env.agent.podLogDir(pod), "nginx", "0.log")
	if err := os.MkdirAll(filepath.Dir(logFile), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFixture(t, filepath.Dir(logFile), "0.log", strings.Repeat("x", 10000))
	env.agent.vols.mu.Lock()
	cacheDir := env.agent.vols.paths[pod.UID]["cache"]
	env.agent.vols.mu.Unlock()
	if cacheDir == "" {
		t.Fatal("the emptyDir was not set up")
	}
	writeFixture(t, cacheDir, "data", strings.Repeat("y", 8192))

	s := getSummary(t, env.agent, "")
	checkNodeSummary(t, s.Node)
	if len(s.Pods) != 1 {
		t.Fatalf("pods %+v", s.Pods)
	}
	p := s.Pods[0]
	if p.PodRef != (statsapi.PodReference{Name: "web", Namespace: "default", UID: "uid-1"}) || p.StartTime.IsZero() {
		t.Errorf("pod ref %+v start %v", p.PodRef, p.StartTime)
	}
	if len(p.Containers) != 1 {
		t.Fatalf("containers %+v", p.Containers)
	}
	c := p.Containers[0]
	if c.Name != "nginx" || *c.CPU.UsageCoreNanoSeconds != 1e9 || c.CPU.UsageNanoCores != nil || !c.CPU.Time.Time.Equal(t0) ||
		*c.Memory.WorkingSetBytes != 5<<20 || *c.Memory.UsageBytes != 6<<20 {
		t.Errorf("container cpu %+v memory %+v", c.CPU, c.Memory)
	}
	if c.Rootfs == nil || *c.Rootfs.UsedBytes != 4096 || *c.Rootfs.InodesUsed != 3 || c.Rootfs.CapacityBytes == nil {
		t.Errorf("rootfs %+v", c.Rootfs)
	}
	if c.Logs == nil || *c.Logs.UsedBytes < 10000 || *c.Logs.InodesUsed != 2 || c.Logs.AvailableBytes == nil {
		t.Errorf("logs %+v", c.Logs)
	}
	if *p.CPU.UsageCoreNanoSeconds != 12e8 || *p.Memory.WorkingSetBytes != 7<<20 || p.Network == nil || p.Network.Name != "eth0" || *p.Network.RxBytes != 100 {
		t.Errorf("pod cpu %+v memory %+v network %+v", p.CPU, p.Memory, p.Network)
	}
	if len(p.VolumeStats) != 1 || p.VolumeStats[0].Name != "cache" || *p.VolumeStats[0].UsedBytes < 8192 {
		t.Fatalf("volumes %+v", p.VolumeStats)
	}
	wantEph := *c.Rootfs.UsedBytes + *c.Logs.UsedBytes + *p.VolumeStats[0].UsedBytes
	if p.EphemeralStorage == nil || *p.EphemeralStorage.UsedBytes != wantEph || p.EphemeralStorage.CapacityBytes == nil {
		t.Errorf("ephemeral storage %+v, want %d used", p.EphemeralStorage, wantEph)
	}

	// Half a core over the next two seconds of runtime samples.
	setContainerStats(env, containerID, t0.Add(2*time.Second), 2e9)
	s = getSummary(t, env.agent, "?only_cpu_and_memory=true")
	c = s.Pods[0].Containers[0]
	if c.CPU.UsageNanoCores == nil || *c.CPU.UsageNanoCores != 5e8 {
		t.Errorf("usageNanoCores %v, want 5e8", c.CPU.UsageNanoCores)
	}
	if c.Rootfs != nil || c.Logs != nil || s.Pods[0].VolumeStats != nil || s.Pods[0].EphemeralStorage != nil || s.Node.Fs != nil || s.Node.Runtime != nil {
		t.Errorf("only_cpu_and_memory reported filesystems: %+v", s)
	}
	if s.Node.CPU == nil || s.Node.Memory == nil {
		t.Errorf("only_cpu_and_memory left out the node's usage: %+v", s.Node)
	}
}

func checkNodeSummary(t *testing.T, n statsapi.NodeStats) {
	t.Helper()
	if n.NodeName != testNode || n.StartTime.IsZero() || n.StartTime.After(time.Now()) {
		t.Errorf("node %q started %v", n.NodeName, n.StartTime)
	}
	if n.CPU == nil || ptr.Deref(n.CPU.UsageCoreNanoSeconds, 0) == 0 || time.Since(n.CPU.Time.Time) > time.Minute {
		t.Errorf("node cpu %+v", n.CPU)
	}
	if n.Memory == nil || ptr.Deref(n.Memory.AvailableBytes, 0) == 0 || ptr.Deref(n.Memory.WorkingSetBytes, 0) == 0 {
		t.Errorf("node memory %+v", n.Memory)
	}
	if n.Fs == nil || ptr.Deref(n.Fs.CapacityBytes, 0) == 0 || n.Fs.AvailableBytes == nil || n.Fs.UsedBytes == nil {
		t.Errorf("node fs %+v", n.Fs)
	}
	if n.Runtime == nil || n.Runtime.ImageFs == nil || *n.Runtime.ImageFs.UsedBytes != 1<<30 || n.Runtime.ImageFs.CapacityBytes == nil {
		t.Fatalf("runtime fs %+v", n.Runtime)
	}
	// One filesystem for images and containers: the container fs is the image fs.
	if n.Runtime.ContainerFs == nil || *n.Runtime.ContainerFs.UsedBytes != 1<<30 {
		t.Errorf("container fs %+v, want the image fs", n.Runtime.ContainerFs)
	}
	if n.Rlimit == nil || ptr.Deref(n.Rlimit.MaxPID, 0) == 0 || ptr.Deref(n.Rlimit.NumOfRunningProcesses, 0) == 0 {
		t.Errorf("rlimit %+v", n.Rlimit)
	}
}
