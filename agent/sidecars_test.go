package agent

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"
)

func withSidecar(p *v1.Pod) {
	always := v1.ContainerRestartPolicyAlways
	p.Spec.InitContainers = []v1.Container{
		{Name: "proxy", Image: "busybox:1", ImagePullPolicy: v1.PullIfNotPresent, RestartPolicy: &always},
		{Name: "setup", Image: "busybox:1", ImagePullPolicy: v1.PullIfNotPresent},
	}
}

func initStatus(p *v1.Pod, name string) v1.ContainerStatus {
	for _, cs := range p.Status.InitContainerStatuses {
		if cs.Name == name {
			return cs
		}
	}
	return v1.ContainerStatus{}
}

func TestSidecarRunsBesideAppContainers(t *testing.T) {
	env := newTestEnv(t, nil, testPod("web", "uid-1", withSidecar, func(p *v1.Pod) { p.Spec.RestartPolicy = v1.RestartPolicyNever }))
	env.start()
	sandbox := "web_default_uid-1_0"
	// The sidecar runs, and initialization moves on to the next init container.
	env.eventually("sidecar running, setup running", func() bool {
		p := env.getPod("web")
		return initStatus(p, "proxy").State.Running != nil && initStatus(p, "setup").State.Running != nil
	})
	setContainerExited(env.runtime, critest.BuildContainerName(&runtimeapi.ContainerMetadata{Name: "setup"}, sandbox), 0)
	env.eventually("app running and pod Ready with the sidecar", func() bool {
		p := env.getPod("web")
		return runningWithIP(p) && condition(p, v1.PodReady).Status == v1.ConditionTrue && initStatus(p, "proxy").Ready
	})

	// A sidecar that exits is restarted even though the pod's restartPolicy is Never.
	setContainerExited(env.runtime, critest.BuildContainerName(&runtimeapi.ContainerMetadata{Name: "proxy"}, sandbox), 1)
	env.eventually("sidecar restarted", func() bool {
		cs := initStatus(env.getPod("web"), "proxy")
		return cs.RestartCount == 1 && cs.State.Running != nil
	})
	if p := env.getPod("web"); p.Status.Phase != v1.PodRunning {
		t.Errorf("phase %s after the sidecar exited", p.Status.Phase)
	}

	// When the app container is done, the pod completes and the sidecar is stopped.
	setContainerExited(env.runtime, critest.BuildContainerName(&runtimeapi.ContainerMetadata{Name: "nginx"}, sandbox), 0)
	env.eventually("pod Succeeded, sidecar stopped", func() bool {
		if env.getPod("web").Status.Phase != v1.PodSucceeded {
			return false
		}
		st, ok := containerIDs(env.runtime)[critest.BuildContainerName(&runtimeapi.ContainerMetadata{Name: "proxy", Attempt: 1}, sandbox)]
		return ok && st == runtimeapi.ContainerState_CONTAINER_EXITED
	})
}
