package agent

import (
	"errors"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
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
