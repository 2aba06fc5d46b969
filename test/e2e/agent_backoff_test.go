//go:build e2e

package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// checkCrashLoopBackOff follows a container that exits after a second: each restart waits
// longer than the one before (kubelet's back-off: at once, 10 s, 20 s ...), kubectl shows
// CrashLoopBackOff and the restart count, and the repeated BackOff event is one Event
// whose count grows.
func checkCrashLoopBackOff(t *testing.T, n *node) {
	applyYAML(t, n, `apiVersion: v1
kind: Pod
metadata:
  name: crasher
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: nginx
    command: ["sh", "-c", "sleep 1; exit 1"]
`)
	// gaps[k] is how long restart k+1 waited after attempt k finished.
	gaps := map[int32]time.Duration{}
	sawBackOff := false
	waitPod(t, n, "crasher", "three restarts", 3*time.Minute, func(p corev1.Pod) bool {
		cs := firstContainer(p)
		if w := cs.State.Waiting; w != nil && w.Reason == "CrashLoopBackOff" {
			sawBackOff = true
		}
		if r, last := cs.State.Running, cs.LastTerminationState.Terminated; r != nil && last != nil {
			gaps[cs.RestartCount] = r.StartedAt.Sub(last.FinishedAt.Time)
		}
		return cs.RestartCount >= 3 && gaps[3] > 0
	})
	t.Logf("restart delays: %v", gaps)
	if !sawBackOff {
		t.Error("never saw CrashLoopBackOff")
	}
	// startedAt and finishedAt have whole seconds; the back-off doubles from 10 s.
	if gaps[2] < 8*time.Second || gaps[3] < gaps[2]+8*time.Second {
		t.Errorf("restart delays %v do not grow like the back-off (≈0s, 10s, 20s)", gaps)
	}
	out := kc(t, n, "get", "pod", "crasher")
	// NAME READY STATUS RESTARTS AGE, where RESTARTS reads "3 (5s ago)".
	if fields := strings.Fields(lastLines(strings.TrimSpace(out), 1)); len(fields) < 4 || atoi(fields[3]) < 3 {
		t.Errorf("kubectl get pod shows no restarts:\n%s", out)
	}
	ev := waitEvent(t, n, "crasher", "BackOff", "Back-off restarting failed container app in pod crasher_default(", 30*time.Second)
	var backOffs int
	for _, e := range podEvents(t, n, "crasher") {
		if e.Reason == "BackOff" {
			backOffs++
		}
	}
	if backOffs != 1 || ev.Count < 2 || ev.Type != corev1.EventTypeWarning {
		t.Errorf("%d BackOff events, count %d: want one aggregated Warning event with count >= 2", backOffs, ev.Count)
	}
}

func atoi(s string) int {
	v, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return v
}
