//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	benchPodCount = 100
	benchLabel    = "skiff-bench=pods"
)

// BenchmarkPods creates 100 pods at once on one node, with the image already present
// (pulled by one pod first), and reports the creation → Running latency of each pod
// (p50/p90/p99), the time until all run, and the RSS of the node's process (`skiff agent`:
// agent and CRI server; the control plane runs apart as `skiff server`) before and after. Latency is measured on this machine's clock: from the moment the create call
// returned to the watch event that first shows the pod Running. The Ready condition's
// lastTransitionTime is printed beside it; it has whole-second precision only.
func BenchmarkPods(b *testing.B) {
	registryConfig := startMirror(b, requireEnv(b, "SKIFF_IMAGES"))
	n := newNode(b, registryConfig)
	n.split = true
	keepLog(b, n)
	n.start()
	cfg, err := clientcmd.BuildConfigFromFlags("", n.kubecfg)
	if err != nil {
		b.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 500, 500
	client := kubernetes.NewForConfigOrDie(cfg)

	prePull(b, client)
	single := singlePods(b, client, 20)
	fmt.Printf("BenchmarkPods single pods: %d created one after another; create→Running p50=%v p99=%v max=%v\n",
		len(single), pct(single, 50), pct(single, 99), pct(single, 100))
	b.ReportMetric(pct(single, 99).Seconds(), "s-single-p99")
	deleteBenchPods(b, client)
	for i := 0; i < b.N; i++ {
		rssBefore, serverBefore := processRSS(b, n.cmd.Process.Pid), serverRSS(b, n)
		anonBefore := processAnonRSS(b, n.cmd.Process.Pid)
		b.ResetTimer()
		res := podsRound(b, client, i)
		b.StopTimer()
		rssAfter, serverAfter := processRSS(b, n.cmd.Process.Pid), serverRSS(b, n)
		anonAfter := processAnonRSS(b, n.cmd.Process.Pid)
		fmt.Printf("BenchmarkPods round %d: the agent's Go runtime with 100 pods: %s\n", i, agentGoStats(b, client, n.name))
		saveAgentHeap(b, client, n.name)
		deleteBenchPods(b, client)
		lat := res.latencies
		fmt.Printf("BenchmarkPods round %d: %d pods; create→Running p50=%v p90=%v p99=%v max=%v; "+
			"all Running after %v; condition-clock p50=%v p99=%v; agent+CRI RSS %d MiB → %d MiB "+
			"(anonymous %d MiB → %d MiB; skiff server %d MiB → %d MiB)\n",
			i, len(lat), pct(lat, 50), pct(lat, 90), pct(lat, 99), pct(lat, 100),
			res.total.Round(time.Millisecond), pct(res.condLatencies, 50), pct(res.condLatencies, 99),
			rssBefore>>10, rssAfter>>10, anonBefore>>10, anonAfter>>10, serverBefore>>10, serverAfter>>10)
		b.ReportMetric(pct(lat, 50).Seconds(), "s-p50")
		b.ReportMetric(pct(lat, 90).Seconds(), "s-p90")
		b.ReportMetric(pct(lat, 99).Seconds(), "s-p99")
		b.ReportMetric(res.total.Seconds(), "s-all-running")
		b.ReportMetric(float64(rssBefore)/1024, "MiB-rss-before")
		b.ReportMetric(float64(rssAfter)/1024, "MiB-rss-after")
		b.ReportMetric(float64(anonAfter)/1024, "MiB-anon-rss-after")
	}
}

type roundResult struct {
	latencies     []time.Duration
	condLatencies []time.Duration
	total         time.Duration
}

func benchPod(name string) *corev1.Pod {
	grace := int64(1)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"skiff-bench": "pods"}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name: "sleep", Image: "nginx", ImagePullPolicy: corev1.PullIfNotPresent,
				Command: []string{"sleep", "3600"},
			}},
		},
	}
}

// prePull runs one pod so the image is in the runtime before the timed rounds.
func prePull(b *testing.B, client kubernetes.Interface) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := client.CoreV1().Pods("default").Create(ctx, benchPod("bench-prepull"), metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	for {
		p, err := client.CoreV1().Pods("default").Get(ctx, "bench-prepull", metav1.GetOptions{})
		if err == nil && p.Status.Phase == corev1.PodRunning {
			break
		}
		if ctx.Err() != nil {
			b.Fatal("pre-pull pod did not run")
		}
		time.Sleep(100 * time.Millisecond)
	}
	deleteBenchPods(b, client)
}

// singlePods creates count pods one at a time, each once the previous one runs, and
// returns their create → Running latencies, sorted.
func singlePods(b *testing.B, client kubernetes.Interface, count int) []time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	w, err := client.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{LabelSelector: benchLabel})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	var lat []time.Duration
	for i := range count {
		name := fmt.Sprintf("bench-single-%03d", i)
		if _, err := client.CoreV1().Pods("default").Create(ctx, benchPod(name), metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		created := time.Now()
		for running := false; !running; {
			select {
			case <-ctx.Done():
				b.Fatalf("pod %s not Running after 5m", name)
			case ev, ok := <-w.ResultChan():
				if !ok {
					b.Fatal("watch closed")
				}
				p, ok := ev.Object.(*corev1.Pod)
				running = ok && p.Name == name && p.Status.Phase == corev1.PodRunning
			}
		}
		lat = append(lat, time.Since(created))
	}
	slices.Sort(lat)
	return lat
}

// podsRound creates the pods in parallel and follows them with one watch.
func podsRound(b *testing.B, client kubernetes.Interface, round int) roundResult {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	w, err := client.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{LabelSelector: benchLabel})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()

	var mu sync.Mutex
	created := map[string]time.Time{}
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 20)
	for i := 0; i < benchPodCount; i++ {
		name := fmt.Sprintf("bench-%d-%03d", round, i)
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if _, err := client.CoreV1().Pods("default").Create(ctx, benchPod(name), metav1.CreateOptions{}); err != nil {
				b.Error(err)
				return
			}
			mu.Lock()
			created[name] = time.Now()
			mu.Unlock()
		})
	}

	running := map[string]time.Time{}
	var res roundResult
	for len(running) < benchPodCount {
		select {
		case <-ctx.Done():
			b.Fatalf("only %d of %d pods Running after 10m", len(running), benchPodCount)
		case ev, ok := <-w.ResultChan():
			if !ok {
				b.Fatal("watch closed")
			}
			if ev.Type == watch.Error {
				b.Fatalf("watch error: %v", ev.Object)
			}
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || p.Status.Phase != corev1.PodRunning || !running[p.Name].IsZero() {
				continue
			}
			running[p.Name] = time.Now()
			if ready := podCondition(p, corev1.PodReady); ready != nil && ready.Status == corev1.ConditionTrue {
				res.condLatencies = append(res.condLatencies, ready.LastTransitionTime.Sub(p.CreationTimestamp.Time))
			}
		}
	}
	res.total = time.Since(start)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for name, at := range running {
		if c, ok := created[name]; ok {
			// A watch event can overtake the create call's reply.
			res.latencies = append(res.latencies, max(at.Sub(c), 0))
		}
	}
	slices.Sort(res.latencies)
	slices.Sort(res.condLatencies)
	return res
}

func podCondition(p *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

func deleteBenchPods(b *testing.B, client kubernetes.Interface) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := client.CoreV1().Pods("default").DeleteCollection(ctx, metav1.DeleteOptions{},
		metav1.ListOptions{LabelSelector: benchLabel}); err != nil {
		b.Fatal(err)
	}
	for {
		pods, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: benchLabel})
		if err == nil && len(pods.Items) == 0 {
			return
		}
		if ctx.Err() != nil {
			b.Fatal("bench pods were not deleted")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// pct is the p-th percentile of sorted durations (p=100 is the maximum).
func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}

// serverRSS is the RSS of `skiff server`, 0 when the node runs as one `skiff up`.
func serverRSS(b *testing.B, n *node) int64 {
	if n.serverCmd == nil {
		return 0
	}
	return processRSS(b, n.serverCmd.Process.Pid)
}

// processRSS reads VmRSS (KiB) of a process.
func processRSS(b *testing.B, pid int) int64 { return procStatusKiB(b, pid, "VmRSS") }

// processAnonRSS reads RssAnon (KiB): the process's own memory, without the pages of its
// binary and other files that VmRSS counts too (skiff is one binary for every role, and
// the init code of every package linked in touches its pages at start-up).
func processAnonRSS(b *testing.B, pid int) int64 { return procStatusKiB(b, pid, "RssAnon") }

func procStatusKiB(b *testing.B, pid int, field string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// keepLog copies skiff's log to $SKIFF_BENCH_LOG (when set) before the node is torn
// down, for profiling where the time went.
func keepLog(b *testing.B, n *node) {
	dst := os.Getenv("SKIFF_BENCH_LOG")
	if dst == "" {
		return
	}
	b.Cleanup(func() {
		if data, err := os.ReadFile(n.logPath); err == nil {
			_ = os.WriteFile(dst, data, 0o644)
		}
	})
}

// agentGoStats reads the Go runtime's own figures from the agent's /metrics (through the
// apiserver's node proxy): where its anonymous memory goes.
func agentGoStats(b *testing.B, client kubernetes.Interface, node string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	raw, err := client.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", node, "proxy", "metrics").DoRaw(ctx)
	if err != nil {
		b.Logf("agent metrics: %v", err)
		return "unknown"
	}
	var out []string
	for _, line := range strings.Split(string(raw), "\n") {
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		switch name {
		case "go_goroutines":
			out = append(out, "goroutines "+value)
		case "go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes", "go_memstats_sys_bytes", "go_memstats_heap_idle_bytes":
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				continue
			}
			out = append(out, fmt.Sprintf("%s %.1f MiB", strings.TrimSuffix(strings.TrimPrefix(name, "go_memstats_"), "_bytes"), v/(1<<20)))
		}
	}
	return strings.Join(out, ", ")
}

// saveAgentHeap writes the agent's heap profile, with the pods running, to
// $SKIFF_BENCH_HEAP (for `go tool pprof`), when that is set.
func saveAgentHeap(b *testing.B, client kubernetes.Interface, node string) {
	dst := os.Getenv("SKIFF_BENCH_HEAP")
	if dst == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	raw, err := client.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", node, "proxy", "debug", "pprof", "heap").DoRaw(ctx)
	if err != nil {
		b.Logf("agent heap profile: %v", err)
		return
	}
	if err := os.WriteFile(dst, raw, 0o644); err != nil {
		b.Logf("agent heap profile: %v", err)
	}
}
