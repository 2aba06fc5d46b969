package cri

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestParseNetDevLine(t *testing.T) {
	const line = "  eth0: 1234    10    2    0    0     0          0         0     5678     20    3    0    0     0       0          0"
	got, ok := parseNetDevLine(line)
	if !ok {
		t.Fatalf("parseNetDevLine(%q) failed", line)
	}
	if got.Name != "eth0" || got.RxBytes.Value != 1234 || got.RxErrors.Value != 2 || got.TxBytes.Value != 5678 || got.TxErrors.Value != 3 {
		t.Errorf("parseNetDevLine = %v", got)
	}
	for _, header := range []string{"Inter-|   Receive                                                |  Transmit", " face |bytes    packets errs drop fifo frame compressed multicast|bytes"} {
		if _, ok := parseNetDevLine(header); ok {
			t.Errorf("header %q parsed as an interface", header)
		}
	}
	// Every line this host's kernel writes for its own interfaces parses.
	data, err := os.ReadFile("/proc/net/dev")
	if err != nil {
		t.Skip(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n")[2:] {
		if _, ok := parseNetDevLine(l); !ok {
			t.Errorf("host line %q did not parse", l)
		}
	}
}

// TestIntegrationPodSandboxStats sends traffic to a pod on the real CNI bridge and
// reads it back from the pod's stats, with its containers' usage summed.
func TestIntegrationPodSandboxStats(t *testing.T) {
	requireIntegration(t)
	e := newTestEnv(t)
	e.useRealNetwork()
	e.startRegistry()
	pod, _ := e.runBusyboxPod("stats", &runtimeapi.ContainerConfig{
		Command: []string{"busybox", "httpd", "-f", "-p", "80", "-h", "/"}})
	e.createContainer(pod, podConfig("stats", ""), &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "sleeper"}, Image: &runtimeapi.ImageSpec{Image: "busybox"},
		Command: []string{"sleep", "1000"}})
	status, err := e.rt.PodSandboxStatus(e.ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: pod})
	if err != nil {
		t.Fatal(err)
	}
	// busybox is over 1 MB: fetching it moves that much out of the pod's eth0.
	body, err := getWithRetry(fmt.Sprintf("http://%s/bin/busybox", net.JoinHostPort(status.Status.Network.Ip, "80")), 15*time.Second)
	if err != nil {
		t.Fatalf("GET from the pod: %v", err)
	}

	resp, err := e.rt.PodSandboxStats(e.ctx, &runtimeapi.PodSandboxStatsRequest{PodSandboxId: pod[:12]})
	if err != nil {
		t.Fatalf("PodSandboxStats: %v", err)
	}
	st := resp.Stats
	if st.Attributes.Id != pod || st.Attributes.Metadata.Name != "stats" {
		t.Errorf("attributes = %v", st.Attributes)
	}
	eth0 := st.Linux.GetNetwork().GetDefaultInterface()
	if eth0.GetName() != "eth0" || eth0.GetTxBytes().GetValue() < uint64(len(body)) || eth0.GetRxBytes().GetValue() == 0 {
		t.Errorf("pod eth0 = %v after serving %d bytes", eth0, len(body))
	}
	if len(st.Linux.Containers) != 2 {
		t.Fatalf("pod stats hold %d containers, want 2", len(st.Linux.Containers))
	}
	var cpu, mem uint64
	for _, c := range st.Linux.Containers {
		cpu += c.GetCpu().GetUsageCoreNanoSeconds().GetValue()
		mem += c.GetMemory().GetWorkingSetBytes().GetValue()
	}
	if got := st.Linux.Cpu.GetUsageCoreNanoSeconds().GetValue(); got != cpu || cpu == 0 {
		t.Errorf("pod CPU = %d, containers' sum = %d", got, cpu)
	}
	if got := st.Linux.Memory.GetWorkingSetBytes().GetValue(); got != mem || mem == 0 {
		t.Errorf("pod working set = %d, containers' sum = %d", got, mem)
	}

	list, err := e.rt.ListPodSandboxStats(e.ctx, &runtimeapi.ListPodSandboxStatsRequest{})
	if err != nil || len(list.Stats) != 1 || list.Stats[0].Attributes.Id != pod {
		t.Errorf("ListPodSandboxStats = %v, %v", list, err)
	}
	list, err = e.rt.ListPodSandboxStats(e.ctx, &runtimeapi.ListPodSandboxStatsRequest{
		Filter: &runtimeapi.PodSandboxStatsFilter{LabelSelector: map[string]string{"app": "other"}}})
	if err != nil || len(list.Stats) != 0 {
		t.Errorf("ListPodSandboxStats with a selector nothing matches = %v, %v", list, err)
	}
}
