package agent

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clienttesting "k8s.io/client-go/testing"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"
)

// markDeleted does what the apiserver does on a graceful delete: set deletionTimestamp and
// the grace period, and leave the object for the kubelet to finish.
func markDeleted(t *testing.T, env *testEnv, name string, grace int64) {
	t.Helper()
	p := env.getPod(name)
	now := metav1.Now()
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &now, &grace
	if _, err := env.client.CoreV1().Pods("default").Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestDeletionEndsInGraceZeroDelete(t *testing.T) {
	env := newTestEnv(t, nil, testPod("web", "uid-1"))
	env.start()
	env.eventually("pod running", func() bool { return runningWithIP(env.getPod("web")) })
	markDeleted(t, env, "web", 7)

	env.eventually("pod object deleted", func() bool {
		_, err := env.client.CoreV1().Pods("default").Get(context.Background(), "web", metav1.GetOptions{})
		return err != nil
	})
	var del clienttesting.DeleteActionImpl
	for _, act := range env.client.Actions() {
		if d, ok := act.(clienttesting.DeleteActionImpl); ok && d.GetResource().Resource == "pods" {
			del = d
		}
	}
	opts := del.DeleteOptions
	if opts.GracePeriodSeconds == nil || *opts.GracePeriodSeconds != 0 {
		t.Errorf("delete grace period %v, want 0", opts.GracePeriodSeconds)
	}
	if opts.Preconditions == nil || opts.Preconditions.UID == nil || *opts.Preconditions.UID != "uid-1" {
		t.Errorf("delete preconditions %+v, want UID uid-1", opts.Preconditions)
	}
	calls := env.runtime.GetCalls()
	for _, want := range []string{"StopContainer", "StopPodSandbox", "RemoveContainer", "RemovePodSandbox"} {
		if countCalls(calls, want) == 0 {
			t.Errorf("no %s call", want)
		}
	}
	if n := len(containerIDs(env.runtime)); n != 0 {
		t.Errorf("%d containers left", n)
	}
	var log eventLog
	env.eventually("Killing event", func() bool {
		for _, e := range env.drainEvents(&log) {
			if e == "Normal Killing Stopping container nginx" {
				return true
			}
		}
		return false
	})
}

// gracefulRuntime records the timeout StopContainer is given.
type gracefulRuntime struct {
	*critest.FakeRuntimeService
	timeouts chan int64
}

func (g *gracefulRuntime) StopContainer(ctx context.Context, id string, timeout int64) error {
	g.timeouts <- timeout
	return g.FakeRuntimeService.StopContainer(ctx, id, timeout)
}

func TestDeletionUsesGracePeriod(t *testing.T) {
	rt := critest.NewFakeRuntimeService()
	rt.FakeStatus = readyRuntimeStatus()
	env := newTestEnv(t, rt, testPod("web", "uid-1"))
	g := &gracefulRuntime{FakeRuntimeService: rt, timeouts: make(chan int64, 10)}
	env.agent.cfg.Runtime = g
	env.start()
	env.eventually("pod running", func() bool { return runningWithIP(env.getPod("web")) })
	markDeleted(t, env, "web", 7)
	select {
	case got := <-g.timeouts:
		if got != 7 {
			t.Errorf("StopContainer timeout %d, want 7", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no StopContainer")
	}
}

func TestPodGoneFromAPIServerIsTornDown(t *testing.T) {
	env := newTestEnv(t, nil, testPod("web", "uid-1"))
	env.start()
	env.eventually("pod running", func() bool { return runningWithIP(env.getPod("web")) })
	if err := env.client.CoreV1().Pods("default").Delete(context.Background(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	env.eventually("runtime emptied", func() bool {
		sbs, _ := env.runtime.ListPodSandbox(context.Background(), nil)
		return len(sbs) == 0 && len(containerIDs(env.runtime)) == 0
	})
}

func TestAdoptionAfterRestartKeepsContainers(t *testing.T) {
	pod := testPod("web", "uid-1")
	env := newTestEnv(t, nil, pod)
	env.start()
	env.eventually("pod running", func() bool { return runningWithIP(env.getPod("web")) })
	before := containerIDs(env.runtime)
	env.stop()
	callsBefore := env.runtime.GetCalls()

	// A new agent on the same runtime, with the pod as the apiserver has it now.
	env2 := newTestEnv(t, env.runtime, env.getPod("web"))
	env2.start()
	time.Sleep(500 * time.Millisecond) // several relists and syncs
	env2.eventually("pod still running", func() bool { return runningWithIP(env2.getPod("web")) })
	calls := env2.runtime.GetCalls()
	for _, c := range []string{"RunPodSandbox", "CreateContainer", "StartContainer", "StopContainer", "RemoveContainer", "StopPodSandbox"} {
		if n := countCalls(calls, c) - countCalls(callsBefore, c); n != 0 {
			t.Errorf("%d %s calls after the agent restarted", n, c)
		}
	}
	after := containerIDs(env2.runtime)
	if len(after) != len(before) {
		t.Fatalf("containers %v, want %v", after, before)
	}
	for id := range before {
		if after[id] != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Errorf("container %s is %v after restart", id, after[id])
		}
	}
	if cs := containerStatusOf(env2.getPod("web")); cs.RestartCount != 0 {
		t.Errorf("restartCount %d after agent restart", cs.RestartCount)
	}
}

func TestOrphansRemovedForeignSandboxesKept(t *testing.T) {
	rt := critest.NewFakeRuntimeService()
	rt.FakeStatus = readyRuntimeStatus()
	ctx := context.Background()
	// A sandbox this agent made for a pod the apiserver no longer has ...
	orphan := testPod("gone", "uid-gone")
	env := newTestEnv(t, rt)
	cfg, err := env.agent.sandboxConfig(orphan, 0)
	if err != nil {
		t.Fatal(err)
	}
	orphanID, _ := rt.RunPodSandbox(ctx, cfg, "")
	// ... and one made by someone else (another agent, a kubelet) on the same runtime.
	foreign := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "theirs", Namespace: "default", Uid: "uid-theirs"},
		Labels:   map[string]string{labelPodUID: "uid-theirs", labelPodName: "theirs", labelPodNamespace: "default"},
	}
	foreignID, _ := rt.RunPodSandbox(ctx, foreign, "")
	env.start()
	env.eventually("orphan removed", func() bool {
		_, err := rt.PodSandboxStatus(ctx, orphanID, false)
		return err != nil
	})
	time.Sleep(200 * time.Millisecond)
	st, err := rt.PodSandboxStatus(ctx, foreignID, false)
	if err != nil || st.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Errorf("foreign sandbox touched: %v %v", st, err)
	}
	for _, a := range env.client.Actions() {
		if a.GetVerb() == "delete" && a.GetResource().Resource == "pods" {
			t.Errorf("orphan teardown deleted a pod object: %v", a)
		}
	}
}
