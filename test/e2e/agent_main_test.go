//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// TestAgent checks the kubelet half through what the stock kubectl shows: termination
// with hooks and grace periods, run-to-completion pods, restart back-off, probes and
// event aggregation. One `skiff up` serves every subtest.
func TestAgent(t *testing.T) {
	registryConfig := startMirror(t, requireEnv(t, "SKIFF_IMAGES"))
	n := newNode(t, registryConfig)
	n.start()

	t.Run("preStop then grace period", func(t *testing.T) { t.Parallel(); checkPreStopAndGrace(t, n) })
	t.Run("postStart failure", func(t *testing.T) { t.Parallel(); checkPostStartFailure(t, n) })
	t.Run("activeDeadlineSeconds", func(t *testing.T) { t.Parallel(); checkActiveDeadline(t, n) })
	t.Run("run to completion", func(t *testing.T) { t.Parallel(); checkRunToCompletion(t, n) })
	t.Run("crash loop back-off", func(t *testing.T) { t.Parallel(); checkCrashLoopBackOff(t, n) })
	t.Run("liveness restarts", func(t *testing.T) { t.Parallel(); checkLivenessRestart(t, n) })
	t.Run("readiness gates Ready", func(t *testing.T) { t.Parallel(); checkReadinessGate(t, n) })
	t.Run("pod spec reaches the runtime", func(t *testing.T) { t.Parallel(); checkPodSpecCoverage(t, n) })
	t.Run("hostNetwork", func(t *testing.T) { t.Parallel(); checkHostNetwork(t, n) })
	t.Run("shareProcessNamespace", func(t *testing.T) { t.Parallel(); checkSharedProcessNamespace(t, n) })
}

// kc runs kubectl against the node and fails t (not the node's test) when it fails.
func kc(t *testing.T, n *node, args ...string) string {
	t.Helper()
	out, errOut, err := n.kubectlQuiet(args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, lastLines(errOut, 20))
	}
	return out
}

// applyYAML writes a manifest to a file and creates it with kubectl.
func applyYAML(t *testing.T, n *node, manifest string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "manifest.yaml")
	if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	kc(t, n, "create", "-f", path)
	t.Cleanup(func() {
		_, _, _ = n.kubectlQuiet("delete", "-f", path, "--grace-period=1", "--ignore-not-found", "--timeout=60s")
	})
}

func getPod(t *testing.T, n *node, name string) corev1.Pod {
	t.Helper()
	var pod corev1.Pod
	if err := json.Unmarshal([]byte(kc(t, n, "get", "pod", name, "-o", "json")), &pod); err != nil {
		t.Fatal(err)
	}
	return pod
}

// waitPod polls the pod through kubectl until cond holds.
func waitPod(t *testing.T, n *node, name, what string, timeout time.Duration, cond func(corev1.Pod) bool) corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var pod corev1.Pod
	for time.Now().Before(deadline) {
		pod = getPod(t, n, name)
		if cond(pod) {
			return pod
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("pod %s: timed out waiting for %s; status: %s", name, what, mustJSON(pod.Status))
	return pod
}

func mustJSON(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

func firstContainer(pod corev1.Pod) corev1.ContainerStatus {
	if len(pod.Status.ContainerStatuses) == 0 {
		return corev1.ContainerStatus{}
	}
	return pod.Status.ContainerStatuses[0]
}

// podEvents lists the events of one pod as kubectl returns them.
func podEvents(t *testing.T, n *node, pod string) []corev1.Event {
	t.Helper()
	var list corev1.EventList
	out := kc(t, n, "get", "events", "--field-selector", "involvedObject.name="+pod, "-o", "json")
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func findEvent(evs []corev1.Event, reason, msgPrefix string) *corev1.Event {
	for i := range evs {
		if evs[i].Reason == reason && strings.HasPrefix(evs[i].Message, msgPrefix) {
			return &evs[i]
		}
	}
	return nil
}

func waitEvent(t *testing.T, n *node, pod, reason, msgPrefix string, timeout time.Duration) corev1.Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if e := findEvent(podEvents(t, n, pod), reason, msgPrefix); e != nil {
			return *e
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("no %s event %q for pod %s; events: %s", reason, msgPrefix, pod, kc(t, n, "get", "events", "--field-selector", "involvedObject.name="+pod))
	return corev1.Event{}
}
