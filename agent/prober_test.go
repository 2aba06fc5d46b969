package agent

import (
	"errors"
	"strings"
	"sync"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clienttesting "k8s.io/client-go/testing"
)

func execProbe(failureThreshold int32) *v1.Probe {
	return &v1.Probe{
		ProbeHandler:     v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"check"}}},
		PeriodSeconds:    1,
		TimeoutSeconds:   1,
		SuccessThreshold: 1,
		FailureThreshold: failureThreshold,
	}
}

func TestReadinessProbeGatesReady(t *testing.T) {
	env := newTestEnv(t, nil, testPod("web", "uid-1", func(p *v1.Pod) {
		p.Spec.Containers[0].ReadinessProbe = execProbe(1)
	}))
	// The first probe fails: running but not ready.
	env.runtime.InjectError("ExecSync", errors.New("not yet"))
	env.start()
	env.eventually("running but not ready", func() bool {
		p := env.getPod("web")
		cs := containerStatusOf(p)
		return p.Status.Phase == v1.PodRunning && cs.State.Running != nil && !cs.Ready &&
			condition(p, v1.PodReady).Reason == "ContainersNotReady"
	})
	env.eventually("ready after a passing probe", func() bool { return containerStatusOf(env.getPod("web")).Ready })
	if c := condition(env.getPod("web"), v1.PodReady); c.Status != v1.ConditionTrue {
		t.Errorf("Ready condition %+v", c)
	}
}

func TestLivenessProbeFailureRestarts(t *testing.T) {
	env := newTestEnv(t, nil, testPod("web", "uid-1", func(p *v1.Pod) {
		p.Spec.Containers[0].LivenessProbe = execProbe(1)
	}))
	env.runtime.InjectError("ExecSync", errors.New("unhealthy"))
	env.start()
	env.eventually("restarted after the liveness failure", func() bool {
		cs := containerStatusOf(env.getPod("web"))
		return cs.RestartCount == 1 && cs.State.Running != nil
	})
	var log eventLog
	evs := strings.Join(env.drainEvents(&log), "\n")
	for _, want := range []string{
		"Warning Unhealthy Liveness probe failed: command [\"check\"] failed: unhealthy",
		"Normal Killing Container nginx failed liveness probe, will be restarted",
	} {
		if !strings.Contains(evs, want) {
			t.Errorf("no event %q in\n%s", want, evs)
		}
	}
}

// TestAgentRestartKeepsReadiness: a new agent finding a container it did not start,
// which the pod's status says is started and ready, keeps it ready until its own probe
// fails failureThreshold times, rather than reporting it unready from the first status.
func TestAgentRestartKeepsReadiness(t *testing.T) {
	withProbes := func(p *v1.Pod) {
		p.Spec.Containers[0].ReadinessProbe = execProbe(3)
		p.Spec.Containers[0].StartupProbe = execProbe(1)
	}
	first := newTestEnv(t, nil, testPod("web", "uid-1", withProbes))
	first.start()
	first.eventually("ready", func() bool { return runningWithIP(first.getPod("web")) })
	first.stop()
	pod := first.getPod("web")
	id := containerStatusOf(pod).ContainerID

	// The new agent sees the same runtime and the pod as the old one left it; from now on
	// every probe fails.
	second := newTestEnv(t, first.runtime, pod)
	// Each status write, with how many probes had run when it was written.
	type write struct {
		cs     v1.ContainerStatus
		probes int
	}
	var mu sync.Mutex
	var written []write
	second.client.PrependReactor("update", "pods", func(act clienttesting.Action) (bool, runtime.Object, error) {
		if act.GetSubresource() == "status" {
			w := write{containerStatusOf(act.(clienttesting.UpdateAction).GetObject().(*v1.Pod)), countCalls(second.runtime.GetCalls(), "ExecSync")}
			mu.Lock()
			written = append(written, w)
			mu.Unlock()
		}
		return false, nil, nil
	})
	for range 20 {
		second.runtime.InjectError("ExecSync", errors.New("not ready"))
	}
	second.start()
	second.eventually("unready after three failed probes", func() bool {
		return !containerStatusOf(second.getPod("web")).Ready
	})

	mu.Lock()
	defer mu.Unlock()
	for i, w := range written {
		if w.cs.ContainerID != id {
			t.Errorf("status %d names container %s, want the running %s", i, w.cs.ContainerID, id)
		}
		if w.cs.Started == nil || !*w.cs.Started {
			t.Errorf("status %d: not started; the startup probe had passed before the restart", i)
		}
		if !w.cs.Ready && w.probes < 3 {
			t.Errorf("status %d: unready after %d failed probes, want the earlier verdict kept until the third", i, w.probes)
		}
	}
	if n := countCalls(second.runtime.GetCalls(), "ExecSync"); n < 3 {
		t.Errorf("%d probes ran in the new agent, want at least the three failures", n)
	}
}
