//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// checkPreStopAndGrace deletes, with --grace-period=5, a pod whose container ignores
// its stop signal (SIGQUIT, the nginx image's STOPSIGNAL, or SIGTERM): its preStop hook
// runs first, then the stop signal (which it logs and ignores), then
// SIGKILL when the grace period is up, so the pod is gone about 5 s after the delete.
func checkPreStopAndGrace(t *testing.T, n *node) {
	dir := t.TempDir()
	applyYAML(t, n, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: prestop
spec:
  containers:
  - name: app
    image: nginx
    command: ["sh", "-c", "trap 'echo term >> /host/log' TERM QUIT; echo started >> /host/log; while true; do sleep 1; done"]
    lifecycle:
      preStop:
        exec:
          command: ["sh", "-c", "echo prestop >> /host/log; sleep 1"]
    volumeMounts:
    - {name: host, mountPath: /host}
  volumes:
  - name: host
    hostPath: {path: %s}
`, dir))
	waitPod(t, n, "prestop", "Running", 2*time.Minute, func(p corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	start := time.Now()
	kc(t, n, "delete", "pod", "prestop", "--grace-period=5", "--wait=false")
	for {
		if _, errOut, err := n.kubectlQuiet("get", "pod", "prestop"); err != nil && strings.Contains(errOut, "NotFound") {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("pod still there 30s after delete --grace-period=5")
		}
		time.Sleep(100 * time.Millisecond)
	}
	gone := time.Since(start)
	t.Logf("pod gone %v after delete --grace-period=5", gone)
	if gone < 4*time.Second || gone > 10*time.Second {
		t.Errorf("pod gone after %v, want about 5s (the grace period)", gone)
	}
	log, err := os.ReadFile(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(log)); strings.Join(got, " ") != "started prestop term" {
		t.Errorf("container log %q, want started, then the preStop hook, then SIGTERM", got)
	}
}

// checkPostStartFailure: a failing postStart hook kills the container, with a
// FailedPostStartHook event, and the container is restarted.
func checkPostStartFailure(t *testing.T, n *node) {
	applyYAML(t, n, `apiVersion: v1
kind: Pod
metadata:
  name: poststart
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: nginx
    command: ["sleep", "3600"]
    lifecycle:
      postStart:
        exec:
          command: ["sh", "-c", "echo setup failed; exit 3"]
`)
	ev := waitEvent(t, n, "poststart", "FailedPostStartHook", `Exec lifecycle hook ([sh -c echo setup failed; exit 3]) for Container "app"`, 2*time.Minute)
	if ev.Type != corev1.EventTypeWarning || !strings.Contains(ev.Message, "setup failed") {
		t.Errorf("event %s %q", ev.Type, ev.Message)
	}
	waitEvent(t, n, "poststart", "Killing", "FailedPostStartHook", 30*time.Second)
	waitPod(t, n, "poststart", "a restart", time.Minute, func(p corev1.Pod) bool { return firstContainer(p).RestartCount >= 1 })
}

// checkActiveDeadline: a pod past activeDeadlineSeconds fails with DeadlineExceeded and
// its container is killed.
func checkActiveDeadline(t *testing.T, n *node) {
	applyYAML(t, n, `apiVersion: v1
kind: Pod
metadata:
  name: deadline
spec:
  activeDeadlineSeconds: 5
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: nginx
    command: ["sleep", "3600"]
`)
	pod := waitPod(t, n, "deadline", "Failed", 2*time.Minute, func(p corev1.Pod) bool {
		return p.Status.Phase == corev1.PodFailed && firstContainer(p).State.Terminated != nil
	})
	if pod.Status.Reason != "DeadlineExceeded" || pod.Status.Message != "Pod was active on the node longer than the specified deadline" {
		t.Errorf("reason %q message %q", pod.Status.Reason, pod.Status.Message)
	}
	waitEvent(t, n, "deadline", "DeadlineExceeded", "Pod was active on the node longer", 10*time.Second)
}

// checkRunToCompletion: restartPolicy Never and OnFailure pods end Succeeded or Failed
// with their container's exit code in its terminated state.
func checkRunToCompletion(t *testing.T, n *node) {
	for _, tc := range []struct{ name, policy, script string }{
		{"never-fails", "Never", "echo bye; exit 3"},
		{"onfailure-ok", "OnFailure", "echo done > /dev/termination-log"},
		{"never-ok", "Never", "true"},
	} {
		applyYAML(t, n, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  restartPolicy: %s
  containers:
  - name: app
    image: nginx
    command: ["sh", "-c", %q]
    terminationMessagePolicy: FallbackToLogsOnError
`, tc.name, tc.policy, tc.script))
	}
	for _, tc := range []struct {
		name    string
		phase   corev1.PodPhase
		code    int32
		reason  string
		message string
	}{
		{"never-fails", corev1.PodFailed, 3, "Error", "bye\n"},
		{"onfailure-ok", corev1.PodSucceeded, 0, "Completed", "done\n"},
		{"never-ok", corev1.PodSucceeded, 0, "Completed", ""},
	} {
		pod := waitPod(t, n, tc.name, string(tc.phase), 2*time.Minute, func(p corev1.Pod) bool { return p.Status.Phase == tc.phase })
		cs := firstContainer(pod)
		term := cs.State.Terminated
		if term == nil || term.ExitCode != tc.code || term.Reason != tc.reason || term.Message != tc.message || cs.RestartCount != 0 {
			t.Errorf("pod %s: container status %s", tc.name, mustJSON(cs))
		}
		if out := kc(t, n, "get", "pod", tc.name); !strings.Contains(out, map[int32]string{0: "Completed", 3: "Error"}[tc.code]) {
			t.Errorf("kubectl get pod %s:\n%s", tc.name, out)
		}
	}
}
