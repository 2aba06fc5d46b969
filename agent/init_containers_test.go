package agent

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"
)

func withInit(p *v1.Pod) {
	p.Spec.InitContainers = []v1.Container{{Name: "setup", Image: "busybox:1", ImagePullPolicy: v1.PullIfNotPresent}}
}

func condition(p *v1.Pod, t v1.PodConditionType) v1.PodCondition {
	for _, c := range p.Status.Conditions {
		if c.Type == t {
			return c
		}
	}
	return v1.PodCondition{}
}

func TestInitContainerRunsFirst(t *testing.T) {
	env := newTestEnv(t, nil, testPod("web", "uid-1", withInit))
	env.start()
	env.eventually("init container running, pod initializing", func() bool {
		p := env.getPod("web")
		return len(p.Status.InitContainerStatuses) == 1 && p.Status.InitContainerStatuses[0].State.Running != nil
	})
	p := env.getPod("web")
	if p.Status.Phase != v1.PodPending {
		t.Errorf("phase %s while initializing", p.Status.Phase)
	}
	if c := condition(p, v1.PodInitialized); c.Status != v1.ConditionFalse || c.Reason != "ContainersNotInitialized" ||
		c.Message != "containers with incomplete status: [setup]" {
		t.Errorf("Initialized condition %+v", c)
	}
	if w := containerStatusOf(p).State.Waiting; w == nil || w.Reason != reasonPodInitializing {
		t.Errorf("app container state %+v", containerStatusOf(p).State)
	}
	if n := countCalls(env.runtime.GetCalls(), "CreateContainer"); n != 1 {
		t.Errorf("%d containers created while initializing, want only the init container", n)
	}

	setContainerExited(env.runtime, critest.BuildContainerName(&runtimeapi.ContainerMetadata{Name: "setup"}, "web_default_uid-1_0"), 0)
	env.eventually("pod running after init", func() bool { return runningWithIP(env.getPod("web")) })
	p = env.getPod("web")
	if c := condition(p, v1.PodInitialized); c.Status != v1.ConditionTrue {
		t.Errorf("Initialized condition %+v", c)
	}
	ics := p.Status.InitContainerStatuses[0]
	if ics.State.Terminated == nil || ics.State.Terminated.Reason != "Completed" || !ics.Ready {
		t.Errorf("init container status %+v", ics)
	}
}

func TestInitContainerFailureNeverFailsPod(t *testing.T) {
	env := newTestEnv(t, nil, testPod("web", "uid-1", withInit, func(p *v1.Pod) { p.Spec.RestartPolicy = v1.RestartPolicyNever }))
	env.start()
	env.eventually("init container running", func() bool {
		p := env.getPod("web")
		return len(p.Status.InitContainerStatuses) == 1 && p.Status.InitContainerStatuses[0].State.Running != nil
	})
	setContainerExited(env.runtime, critest.BuildContainerName(&runtimeapi.ContainerMetadata{Name: "setup"}, "web_default_uid-1_0"), 3)
	env.eventually("pod Failed", func() bool { return env.getPod("web").Status.Phase == v1.PodFailed })
	if n := countCalls(env.runtime.GetCalls(), "CreateContainer"); n != 1 {
		t.Errorf("%d containers created, want only the failed init container", n)
	}
}
