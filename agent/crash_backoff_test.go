package agent

import (
	"testing"
	"time"

	"k8s.io/client-go/util/flowcontrol"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	testingclock "k8s.io/utils/clock/testing"
)

// TestCrashBackOffDoublesAndResets walks kubelet's restart back-off on a fake clock: the
// first restart is at once, then 10 s, 20 s, 40 s ... up to 5 min, and a container that
// ran for more than 10 minutes starts over at 10 s.
func TestCrashBackOffDoublesAndResets(t *testing.T) {
	env := newTestEnv(t, nil)
	start := time.Date(2026, 11, 28, 20, 0, 0, 0, time.UTC)
	clock := testingclock.NewFakeClock(start)
	env.agent.crashBackoff = flowcontrol.NewFakeBackOff(containerBackoffBase, containerBackoffMax, clock)
	pod := testPod("web", "uid-1")
	c := &pod.Spec.Containers[0]

	// exit makes the container finish now and asks whether it may restart; it returns
	// the back-off it has to wait (0: restart at once).
	exit := func(after time.Duration) time.Duration {
		clock.Step(after)
		last := &runtimeapi.ContainerStatus{State: runtimeapi.ContainerState_CONTAINER_EXITED, FinishedAt: clock.Now().UnixNano()}
		w, retry := env.agent.crashBackOff(pod, c, last)
		if w == nil {
			return 0
		}
		if w.reason != reasonCrashLoopBackOff {
			t.Fatalf("waiting reason %q", w.reason)
		}
		clock.Step(retry) // the worker comes back when the back-off ends
		if w, _ := env.agent.crashBackOff(pod, c, last); w != nil {
			t.Fatalf("still in back-off after waiting %v", retry)
		}
		return retry
	}
	want := []time.Duration{0, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 300 * time.Second, 300 * time.Second}
	for i, w := range want {
		if got := exit(time.Second); got != w {
			t.Fatalf("restart %d waited %v, want %v", i+1, got, w)
		}
	}
	// Eleven minutes of running: the back-off starts over.
	if got := exit(11 * time.Minute); got != 0 {
		t.Errorf("restart after a long run waited %v, want none", got)
	}
	if got := exit(time.Second); got != 10*time.Second {
		t.Errorf("next crash waited %v, want 10s", got)
	}
}
