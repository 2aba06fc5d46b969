//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/skiff-sh/skiff/test/registry/mirror"
)

// slowImage is served by a mirror of its own that the test throttles. It is the busybox
// stand-in, whose blobs no other subtest pulls: a blob the store already has (from the
// nginx pods beside it) would not be downloaded, and the pull would not be slow.
const slowImage = "quay.io/skiff-e2e/slow-busybox:1"

// TestAgentNode checks what kubectl shows of the node and of pods that cannot run yet:
// pressure conditions, stats/summary and metrics through the apiserver's node proxy, the
// one line that says why a pod is not running, pull progress and the slow-pull cancel, and
// log rotation under `kubectl logs -f`. One `skiff up` serves every subtest.
func TestAgentNode(t *testing.T) {
	images := requireEnv(t, "SKIFF_IMAGES")
	registryConfig := startMirror(t, images)
	slow := startSlowMirror(t, images, registryConfig)
	n := newNode(t, registryConfig)
	n.extraFlags = []string{
		"--container-log-max-size", "4Ki", "--container-log-max-files", "3", "--container-log-monitor-interval", "1s",
		// The throttled mirror serves 100 kB/s; the local one is much faster.
		"--image-pull-min-bytes-per-second", "400000", "--image-pull-slow-timeout", "8s",
	}
	n.start()

	t.Run("node status", func(t *testing.T) { t.Parallel(); checkNodeStatus(t, n) })
	t.Run("stats summary and metrics", func(t *testing.T) { t.Parallel(); checkStatsAndMetrics(t, n) })
	t.Run("why not running", func(t *testing.T) { t.Parallel(); checkWhyNotRunning(t, n) })
	t.Run("pull progress and slow-pull cancel", func(t *testing.T) { t.Parallel(); checkPullProgress(t, n, slow) })
	t.Run("log rotation under logs -f", func(t *testing.T) { t.Parallel(); checkLogRotation(t, n) })
	t.Run("port-forward attach and logs options", func(t *testing.T) { t.Parallel(); checkKubeletAPI(t, n) })
}

// checkKubeletAPI drives the kubelet API through the apiserver with the stock kubectl:
// port-forward to nginx, attach to a container's output, and logs with --tail,
// --timestamps and --since.
func checkKubeletAPI(t *testing.T, n *node) {
	applyYAML(t, n, `apiVersion: v1
kind: Pod
metadata:
  name: kapi
spec:
  containers:
  - name: web
    image: nginx
  - name: ticker
    image: nginx
    command: ["sh", "-c", "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.2; done"]
`)
	waitPod(t, n, "kapi", "Running", 2*time.Minute, func(p corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })

	// port-forward on a port the kernel picks; kubectl prints it.
	pf := exec.Command("kubectl", "--kubeconfig", n.kubecfg, "--cache-dir", n.cacheDir,
		"port-forward", "--address", "127.0.0.1", "pod/kapi", ":80")
	var pfErr bytes.Buffer
	pf.Stderr = &pfErr
	stdout, err := pf.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := pf.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pf.Process.Kill(); _ = pf.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	m := regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) -> 80`).FindStringSubmatch(line)
	if err != nil || m == nil {
		t.Fatalf("kubectl port-forward said %q (%v), stderr %q", line, err, pfErr.String())
	}
	curlNginx(t, "127.0.0.1:"+m[1])

	// attach: the ticker's output as it comes.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "kubectl", "--kubeconfig", n.kubecfg, "--cache-dir", n.cacheDir,
		"attach", "kapi", "-c", "ticker").Output()
	if ticks := regexp.MustCompile(`(?m)^tick-\d+$`).FindAllString(string(out), -1); len(ticks) < 3 {
		t.Errorf("kubectl attach for 3s gave %q, want the ticks written meanwhile", out)
	}

	logs := kc(t, n, "logs", "kapi", "-c", "ticker", "--tail", "2", "--timestamps")
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	stamped := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z tick-\d+$`)
	if len(lines) != 2 || !stamped.MatchString(lines[0]) || !stamped.MatchString(lines[1]) {
		t.Errorf("logs --tail 2 --timestamps = %q", logs)
	}
	// The ticker has written for several seconds by now: the last two are a part of it.
	all := strings.Count(kc(t, n, "logs", "kapi", "-c", "ticker"), "\n")
	recent := strings.Count(kc(t, n, "logs", "kapi", "-c", "ticker", "--since", "2s"), "\n")
	if recent == 0 || recent >= all {
		t.Errorf("logs --since 2s gave %d lines of %d, want the last two seconds' (about 10)", recent, all)
	}
}

// startSlowMirror serves slowImage throttled to 100 kB/s from a mirror of its own,
// configured in registryConfig next to the fast one.
func startSlowMirror(t *testing.T, images, registryConfig string) *mirror.Mirror {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m, err := mirror.Start(ctx, fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		map[string]string{slowImage: filepath.Join(images, "busybox")}, mirror.WithThrottle(100_000))
	if err != nil {
		cancel()
		t.Fatalf("starting the slow mirror: %v", err)
	}
	t.Cleanup(func() { m.Close(); cancel() })
	if err := m.WriteHostsDir(registryConfig); err != nil {
		t.Fatal(err)
	}
	return m
}

func getNode(t *testing.T, n *node) corev1.Node {
	t.Helper()
	var node corev1.Node
	if err := json.Unmarshal([]byte(kc(t, n, "get", "node", n.name, "-o", "json")), &node); err != nil {
		t.Fatal(err)
	}
	return node
}

func checkNodeStatus(t *testing.T, n *node) {
	node := getNode(t, n)
	want := map[corev1.NodeConditionType]string{
		corev1.NodeMemoryPressure:     "KubeletHasSufficientMemory",
		corev1.NodeDiskPressure:       "KubeletHasNoDiskPressure",
		corev1.NodePIDPressure:        "KubeletHasSufficientPID",
		corev1.NodeReady:              "KubeletReady",
		corev1.NodeNetworkUnavailable: "NetworkReady",
	}
	for _, c := range node.Status.Conditions {
		reason, ok := want[c.Type]
		if !ok {
			continue
		}
		delete(want, c.Type)
		wantStatus := corev1.ConditionFalse // pressure conditions, NetworkUnavailable
		if c.Type == corev1.NodeReady {
			wantStatus = corev1.ConditionTrue
		}
		// This machine has the memory, disk and PIDs: a True pressure condition would be
		// a wrong reading, and its message says which.
		if c.Status != wantStatus || c.Reason != reason || c.Message == "" {
			t.Errorf("condition %s = %s %s %q, want %s %s", c.Type, c.Status, c.Reason, c.Message, wantStatus, reason)
		}
	}
	if len(want) != 0 {
		t.Errorf("conditions missing: %v in %s", want, mustJSON(node.Status.Conditions))
	}
	info := node.Status.NodeInfo
	if info.KubeletVersion == "" || info.ContainerRuntimeVersion == "" ||
		info.KernelVersion == "" || info.OSImage == "" || info.OperatingSystem != "linux" {
		t.Errorf("nodeInfo %s", mustJSON(info))
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourcePods, corev1.ResourceEphemeralStorage} {
		if q, ok := node.Status.Capacity[r]; !ok || q.Sign() <= 0 {
			t.Errorf("capacity %s = %v", r, node.Status.Capacity)
		}
		if q, ok := node.Status.Allocatable[r]; !ok || q.Sign() <= 0 {
			t.Errorf("allocatable %s = %v", r, node.Status.Allocatable)
		}
	}
}

func checkStatsAndMetrics(t *testing.T, n *node) {
	applyYAML(t, n, `apiVersion: v1
kind: Pod
metadata:
  name: statspod
spec:
  containers:
  - name: app
    image: nginx
    command: ["sh", "-c", "echo hello; exec sleep 3600"]
`)
	waitPod(t, n, "statspod", "Running", 2*time.Minute, func(p corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })

	// The kubelet's own types: what kubectl top's metrics-server would read.
	var summary statsapi.Summary
	raw := kc(t, n, "get", "--raw", "/api/v1/nodes/"+n.name+"/proxy/stats/summary")
	if err := json.Unmarshal([]byte(raw), &summary); err != nil {
		t.Fatalf("stats/summary: %v\n%s", err, raw)
	}
	if node := summary.Node; node.NodeName != n.name || node.CPU == nil || node.CPU.UsageCoreNanoSeconds == nil ||
		node.Memory == nil || node.Memory.WorkingSetBytes == nil || node.Fs == nil || node.Fs.CapacityBytes == nil {
		t.Errorf("summary node: %s", raw)
	}
	found := false
	for _, p := range summary.Pods {
		if p.PodRef.Name != "statspod" {
			continue
		}
		found = true
		if len(p.Containers) != 1 || !containerStatsComplete(p.Containers[0]) || p.Containers[0].Name != "app" {
			t.Errorf("summary of statspod: %s", mustJSON(p))
		}
	}
	if !found {
		t.Errorf("statspod not in stats/summary: %s", raw)
	}

	var pods corev1.PodList
	if err := json.Unmarshal([]byte(kc(t, n, "get", "--raw", "/api/v1/nodes/"+n.name+"/proxy/pods")), &pods); err != nil {
		t.Errorf("kubelet /pods: %v", err)
	}
	listed := false
	for _, p := range pods.Items {
		listed = listed || p.Name == "statspod" && p.Status.Phase == corev1.PodRunning
	}
	if !listed {
		t.Errorf("kubelet /pods lacks statspod Running: %d pods", len(pods.Items))
	}

	metrics := kc(t, n, "get", "--raw", "/api/v1/nodes/"+n.name+"/proxy/metrics")
	for _, re := range []string{
		`(?m)^kubelet_running_pods [1-9][0-9]*$`,
		`(?m)^kubelet_runtime_operations_total\{operation_type="run_podsandbox"\} [1-9][0-9]*$`,
		`(?m)^kubelet_node_name\{node="` + regexp.QuoteMeta(n.name) + `"\} 1$`,
		`(?m)^kubelet_pod_start_duration_seconds_count [1-9][0-9]*$`,
	} {
		if !regexp.MustCompile(re).MatchString(metrics) {
			t.Errorf("metrics lack %s", re)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", lastLines(metrics, 60))
	}
}

func checkWhyNotRunning(t *testing.T, n *node) {
	applyYAML(t, n, `apiVersion: v1
kind: ConfigMap
metadata:
  name: why-cm
data:
  present: "yes"
---
apiVersion: v1
kind: Pod
metadata:
  name: why-key
spec:
  containers:
  - name: app
    image: nginx
    env:
    - name: X
      valueFrom:
        configMapKeyRef: {name: why-cm, key: absent}
---
apiVersion: v1
kind: Pod
metadata:
  name: why-volume
spec:
  containers:
  - name: app
    image: nginx
    volumeMounts: [{name: cfg, mountPath: /cfg}]
  volumes:
  - name: cfg
    configMap: {name: why-missing}
---
apiVersion: v1
kind: Pod
metadata:
  name: why-node
spec:
  nodeSelector: {disk: ssd}
  containers:
  - name: app
    image: nginx
`)
	waiting := func(name, reason, message string) {
		pod := waitPod(t, n, name, reason, 2*time.Minute, func(p corev1.Pod) bool {
			return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Waiting != nil &&
				p.Status.ContainerStatuses[0].State.Waiting.Reason == reason &&
				p.Status.ContainerStatuses[0].State.Waiting.Message != ""
		})
		if got := pod.Status.ContainerStatuses[0].State.Waiting.Message; !strings.Contains(got, message) {
			t.Errorf("pod %s waits with %q, want it to name %q", name, got, message)
		}
	}
	waiting("why-key", "CreateContainerConfigError", "couldn't find key absent in ConfigMap default/why-cm")
	waiting("why-volume", "ContainerCreating", `MountVolume.SetUp failed for volume "cfg" : configmap "why-missing" not found`)
	pod := waitPod(t, n, "why-node", "Unschedulable", time.Minute, func(p corev1.Pod) bool {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				return true
			}
		}
		return false
	})
	for _, c := range pod.Status.Conditions {
		want := "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
		if c.Type == corev1.PodScheduled && !strings.HasPrefix(c.Message, want) {
			t.Errorf("PodScheduled message %q, want it to start with %q", c.Message, want)
		}
	}
}

func checkPullProgress(t *testing.T, n *node, slow *mirror.Mirror) {
	applyYAML(t, n, `apiVersion: v1
kind: Pod
metadata:
  name: slowpull
spec:
  containers:
  - name: app
    image: `+slowImage+`
    command: ["sleep", "3600"]
`)
	progress := regexp.MustCompile(`^Pulling ` + regexp.QuoteMeta(slowImage) + `: [0-9]+\.[0-9]/[0-9]+\.[0-9] MB, [0-9.]+ kB/s$`)
	pod := waitPod(t, n, "slowpull", "a pull progress message", time.Minute, func(p corev1.Pod) bool {
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].State.Waiting != nil && progress.MatchString(cs[0].State.Waiting.Message)
	})
	t.Logf("progress: %s", pod.Status.ContainerStatuses[0].State.Waiting.Message)
	// 100 kB/s is under the node's 400 kB/s floor: after 8 s the pull is cancelled, the
	// container says why, and the pull is retried after a back-off.
	pod = waitPod(t, n, "slowpull", "the slow pull cancelled", time.Minute, func(p corev1.Pod) bool {
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].State.Waiting != nil &&
			(cs[0].State.Waiting.Reason == "ErrImagePull" || cs[0].State.Waiting.Reason == "ImagePullBackOff") &&
			strings.Contains(cs[0].State.Waiting.Message, "pull cancelled: under 400.0 kB/s for 8s")
	})
	t.Logf("cancelled: %s", mustJSON(pod.Status.ContainerStatuses[0].State.Waiting))
	waitEvent(t, n, "slowpull", "Failed", `Failed to pull image "`+slowImage+`": pull cancelled`, time.Minute)
	// Once the registry is fast again, the retry gets the image.
	slow.SetThrottle(0)
	waitPod(t, n, "slowpull", "Running after the retry", 3*time.Minute, func(p corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
}

func checkLogRotation(t *testing.T, n *node) {
	const lines = 1500
	applyYAML(t, n, `apiVersion: v1
kind: Pod
metadata:
  name: chatty
spec:
  restartPolicy: Never
  containers:
  - name: app
    image: nginx
    command: ["sh", "-c", "sleep 3; i=0; while [ $i -lt `+strconv.Itoa(lines)+` ]; do echo line-$i; i=$((i+1)); sleep 0.01; done"]
`)
	pod := waitPod(t, n, "chatty", "Running", 2*time.Minute, func(p corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	follow := exec.Command("kubectl", "--kubeconfig", n.kubecfg, "--cache-dir", n.cacheDir, "logs", "-f", "chatty")
	out, err := follow.Output()
	if err != nil {
		t.Fatalf("kubectl logs -f: %v", err)
	}
	got := strings.Fields(string(out))
	for i := range lines {
		if i >= len(got) || got[i] != "line-"+strconv.Itoa(i) {
			t.Fatalf("kubectl logs -f: line %d is %q, want line-%d (%d lines followed)", i, at(got, i), i, len(got))
		}
	}
	if len(got) != lines {
		t.Errorf("kubectl logs -f gave %d lines, want %d", len(got), lines)
	}
	dir := filepath.Join(n.dataDir, "pods", fmt.Sprintf("default_chatty_%s", pod.UID), "app")
	rotated, _ := filepath.Glob(filepath.Join(dir, "0.log.*"))
	compressed, _ := filepath.Glob(filepath.Join(dir, "0.log.*.gz"))
	// At most max-files - 1 rotated files remain, all but the newest compressed.
	if len(rotated) == 0 || len(rotated) > 2 || len(compressed) != len(rotated)-1 {
		entries, _ := os.ReadDir(dir)
		t.Errorf("rotated logs %v (compressed %v); directory: %v", rotated, compressed, entries)
	}
}

// containerStatsComplete: CPU and memory use and a non-empty log are reported.
func containerStatsComplete(c statsapi.ContainerStats) bool {
	return c.CPU != nil && c.CPU.UsageCoreNanoSeconds != nil && c.Memory != nil && c.Memory.WorkingSetBytes != nil &&
		c.Logs != nil && c.Logs.UsedBytes != nil && *c.Logs.UsedBytes > 0
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "<none>"
}
