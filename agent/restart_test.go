package agent

import (
	"errors"
	"os"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"
)

func containerStatusOf(p *v1.Pod) v1.ContainerStatus {
	if len(p.Status.ContainerStatuses) == 0 {
		return v1.ContainerStatus{}
	}
	return p.Status.ContainerStatuses[0]
}

func TestRestartOnExitWithBackOff(t *testing.T) {
	env := newTestEnv(t, nil, testPod("web", "uid-1"))
	env.start()
	env.eventually("pod running", func() bool { return runningWithIP(env.getPod("web")) })

	// First exit: restarted at once, restartCount 1, lastState terminated.
	sandbox := "web_default_uid-1_0"
	setContainerExited(env.runtime, critest.BuildContainerName(&runtimeapi.ContainerMetadata{Name: "nginx"}, sandbox), 1)
	env.eventually("first restart", func() bool {
		cs := containerStatusOf(env.getPod("web"))
		return cs.RestartCount == 1 && cs.State.Running != nil
	})
	cs := containerStatusOf(env.getPod("web"))
	if cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != 1 ||
		cs.LastTerminationState.Terminated.Reason != "Error" {
		t.Errorf("lastState %+v", cs.LastTerminationState)
	}

	// Second exit: in back-off, CrashLoopBackOff, then restarted when it expires.
	setContainerExited(env.runtime, critest.BuildContainerName(&runtimeapi.ContainerMetadata{Name: "nginx", Attempt: 1}, sandbox), 2)
	env.eventually("CrashLoopBackOff", func() bool {
		cs := containerStatusOf(env.getPod("web"))
		return cs.State.Waiting != nil && cs.State.Waiting.Reason == reasonCrashLoopBackOff
	})
	cs = containerStatusOf(env.getPod("web"))
	if !strings.Contains(cs.State.Waiting.Message, "restarting failed container=nginx") || cs.Ready {
		t.Errorf("waiting %+v ready %v", cs.State.Waiting, cs.Ready)
	}
	if p := env.getPod("web"); p.Status.Phase != v1.PodRunning {
		t.Errorf("phase %s during back-off, want Running", p.Status.Phase)
	}
	env.eventually("second restart after back-off", func() bool {
		cs := containerStatusOf(env.getPod("web"))
		return cs.RestartCount == 2 && cs.State.Running != nil
	})
	// Only the newest dead attempt is kept.
	if n := len(containerIDs(env.runtime)); n != 2 {
		t.Errorf("%d containers in the runtime, want the running one and the previous", n)
	}
	var log eventLog
	env.eventually("BackOff event", func() bool {
		for _, e := range env.drainEvents(&log) {
			if strings.HasPrefix(e, "Warning BackOff Back-off restarting failed container nginx") {
				return true
			}
		}
		return false
	})
}

func TestRestartPolicyNeverSucceeds(t *testing.T) {
	env := newTestEnv(t, nil, testPod("job", "uid-2", func(p *v1.Pod) { p.Spec.RestartPolicy = v1.RestartPolicyNever }))
	env.start()
	env.eventually("pod running", func() bool { return env.getPod("job").Status.Phase == v1.PodRunning })
	// What the container would write to /dev/termination-log.
	msgFile := env.agent.terminationMessagePath(env.getPod("job"), "nginx", 0)
	if err := os.WriteFile(msgFile, []byte("all done"), 0o644); err != nil {
		t.Fatal(err)
	}
	setContainerExited(env.runtime, critest.BuildContainerName(&runtimeapi.ContainerMetadata{Name: "nginx"}, "job_default_uid-2_0"), 0)
	env.eventually("pod Succeeded, sandbox stopped", func() bool {
		p := env.getPod("job")
		sbs, _ := env.runtime.ListPodSandbox(t.Context(), &runtimeapi.PodSandboxFilter{})
		return p.Status.Phase == v1.PodSucceeded && len(sbs) == 1 && sbs[0].State == runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	})
	cs := containerStatusOf(env.getPod("job"))
	if cs.State.Terminated == nil || cs.State.Terminated.Reason != "Completed" || cs.RestartCount != 0 ||
		cs.State.Terminated.Message != "all done" {
		t.Errorf("container status %+v", cs)
	}
	if n := countCalls(env.runtime.GetCalls(), "CreateContainer"); n != 1 {
		t.Errorf("%d CreateContainer calls, want 1", n)
	}
}

func TestImagePullBackOff(t *testing.T) {
	env := newTestEnv(t, nil, testPod("web", "uid-1", func(p *v1.Pod) { p.Spec.Containers[0].Image = "registry.local/missing:1" }))
	pullErr := errors.New("registry.local/missing:1: not found in registry")
	for range 3 {
		env.images.InjectError("PullImage", pullErr)
	}
	env.start()
	env.eventually("ErrImagePull", func() bool {
		w := containerStatusOf(env.getPod("web")).State.Waiting
		return w != nil && w.Reason == reasonErrImagePull && strings.Contains(w.Message, pullErr.Error())
	})
	env.eventually("ImagePullBackOff", func() bool {
		w := containerStatusOf(env.getPod("web")).State.Waiting
		return w != nil && w.Reason == reasonImagePullBackOff
	})
	if p := env.getPod("web"); p.Status.Phase != v1.PodPending {
		t.Errorf("phase %s, want Pending", p.Status.Phase)
	}
	env.eventually("pulled after the registry recovers", func() bool { return runningWithIP(env.getPod("web")) })
	var log eventLog
	evs := strings.Join(env.drainEvents(&log), "\n")
	for _, want := range []string{
		`Normal Pulling Pulling image "registry.local/missing:1"`,
		`Warning Failed Failed to pull image "registry.local/missing:1": ` + pullErr.Error(),
		`Warning Failed Error: ErrImagePull`,
		`Normal BackOff Back-off pulling image "registry.local/missing:1"`,
		`Normal Pulled Successfully pulled image "registry.local/missing:1"`,
		`Normal Created Created container: nginx`,
		`Normal Started Started container nginx`,
	} {
		if !strings.Contains(evs, want) {
			t.Errorf("no event %q in\n%s", want, evs)
		}
	}
}

func TestImagePullPolicyNever(t *testing.T) {
	env := newTestEnv(t, nil, testPod("web", "uid-1", func(p *v1.Pod) { p.Spec.Containers[0].ImagePullPolicy = v1.PullNever }))
	env.start()
	env.eventually("ErrImageNeverPull", func() bool {
		w := containerStatusOf(env.getPod("web")).State.Waiting
		return w != nil && w.Reason == reasonErrImageNeverPull
	})
	env.images.Lock()
	calls := append([]string(nil), env.images.Called...)
	env.images.Unlock()
	if n := countCalls(calls, "PullImage"); n != 0 {
		t.Errorf("%d pulls with policy Never", n)
	}
}
