package agent

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"
)

// hookRuntime records exec and stop calls in order, with their timeouts.
type hookRuntime struct {
	*critest.FakeRuntimeService
	mu    sync.Mutex
	calls []string
}

func (h *hookRuntime) record(s string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, s)
}

func (h *hookRuntime) recorded() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.calls...)
}

func (h *hookRuntime) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) ([]byte, []byte, error) {
	h.record("exec " + strings.Join(cmd, " ") + " timeout=" + timeout.String())
	return h.FakeRuntimeService.ExecSync(ctx, id, cmd, timeout)
}

func (h *hookRuntime) StopContainer(ctx context.Context, id string, timeout int64) error {
	h.record("stop timeout=" + strconv.FormatInt(timeout, 10))
	return h.FakeRuntimeService.StopContainer(ctx, id, timeout)
}

func newHookEnv(t *testing.T, mutate func(*v1.Pod)) (*testEnv, *hookRuntime) {
	rt := critest.NewFakeRuntimeService()
	rt.FakeStatus = readyRuntimeStatus()
	env := newTestEnv(t, rt, testPod("web", "uid-1", mutate))
	h := &hookRuntime{FakeRuntimeService: rt}
	env.agent.cfg.Runtime = h
	return env, h
}

func TestPreStopExecRunsBeforeStop(t *testing.T) {
	env, h := newHookEnv(t, func(p *v1.Pod) {
		p.Spec.Containers[0].Lifecycle = &v1.Lifecycle{PreStop: &v1.LifecycleHandler{
			Exec: &v1.ExecAction{Command: []string{"nginx", "-s", "quit"}}}}
	})
	env.start()
	env.eventually("pod running", func() bool { return runningWithIP(env.getPod("web")) })
	markDeleted(t, env, "web", 7)
	env.eventually("stopped", func() bool {
		for _, c := range h.recorded() {
			if strings.HasPrefix(c, "stop") {
				return true
			}
		}
		return false
	})
	got := strings.Join(h.recorded(), "; ")
	if want := "exec nginx -s quit timeout=7s; stop timeout=7"; !strings.HasPrefix(got, want) {
		t.Errorf("calls %q, want them to start with %q", got, want)
	}
}

func TestPreStopUsesUpGracePeriod(t *testing.T) {
	for _, tc := range []struct {
		name               string
		sleep, grace, want int64
	}{
		{"hook shorter than grace", 1, 5, 4},
		{"hook cut at the grace period", 10, 1, minGracePeriod},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, h := newHookEnv(t, func(p *v1.Pod) {
				p.Spec.Containers[0].Lifecycle = &v1.Lifecycle{PreStop: &v1.LifecycleHandler{Sleep: &v1.SleepAction{Seconds: tc.sleep}}}
			})
			pod := env.getPod("web")
			start := time.Now()
			if err := env.agent.killContainer(t.Context(), pod, &runtimePod{}, "missing", "nginx", "", tc.grace); err != nil {
				t.Fatal(err)
			}
			if elapsed := time.Since(start); elapsed > time.Duration(min(tc.sleep, tc.grace))*time.Second+time.Second {
				t.Errorf("preStop took %v", elapsed)
			}
			if got, want := h.recorded(), "stop timeout="+strconv.FormatInt(tc.want, 10); len(got) != 1 || got[0] != want {
				t.Errorf("calls %q, want [%s]", got, want)
			}
		})
	}
}

func TestPreStopHTTPGetAndFailure(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.RequestURI())
		mu.Unlock()
		w.WriteHeader(http.StatusInternalServerError) // any answer is a success for a hook
	}))
	defer srv.Close()
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	portNum, _ := strconv.Atoi(port)
	env, h := newHookEnv(t, func(p *v1.Pod) {
		p.Spec.Containers[0].Lifecycle = &v1.Lifecycle{PreStop: &v1.LifecycleHandler{HTTPGet: &v1.HTTPGetAction{
			Host: host, Port: intstr.FromInt(portNum), Path: "/shutdown?now=1"}}}
	})
	pod := env.getPod("web")
	if err := env.agent.killContainer(t.Context(), pod, &runtimePod{}, "missing", "nginx", "", 30); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(paths) != 1 || paths[0] != "/shutdown?now=1" {
		t.Errorf("hook requests %q", paths)
	}
	mu.Unlock()
	if got := h.recorded(); len(got) != 1 || got[0] != "stop timeout=30" {
		t.Errorf("calls %q", got)
	}

	// A hook that cannot reach its server gets a FailedPreStopHook event; the stop goes on.
	srv.Close()
	if err := env.agent.killContainer(t.Context(), pod, &runtimePod{}, "missing", "nginx", "", 30); err != nil {
		t.Fatal(err)
	}
	var log eventLog
	evs := strings.Join(env.drainEvents(&log), "\n")
	if !strings.Contains(evs, `Warning FailedPreStopHook HTTP lifecycle hook (/shutdown?now=1) for Container "nginx" in Pod "web_default(uid-1)" failed`) {
		t.Errorf("events:\n%s", evs)
	}
}

func TestPostStartFailureKillsContainer(t *testing.T) {
	env, h := newHookEnv(t, func(p *v1.Pod) {
		p.Spec.Containers[0].Lifecycle = &v1.Lifecycle{PostStart: &v1.LifecycleHandler{
			Exec: &v1.ExecAction{Command: []string{"/bin/setup"}}}}
	})
	h.InjectError("ExecSync", errors.New("command terminated with exit code 3"))
	env.start()
	var log eventLog
	env.eventually("FailedPostStartHook and Killing", func() bool {
		evs := strings.Join(env.drainEvents(&log), "\n")
		return strings.Contains(evs, `Warning FailedPostStartHook Exec lifecycle hook ([/bin/setup]) for Container "nginx" in Pod "web_default(uid-1)" failed - error: command terminated with exit code 3`) &&
			strings.Contains(evs, "Normal Killing FailedPostStartHook")
	})
	// The next attempt's hook succeeds: the container runs again, restarted once.
	env.eventually("restarted and running", func() bool {
		cs := containerStatusOf(env.getPod("web"))
		return cs.RestartCount == 1 && cs.State.Running != nil
	})
	calls := h.recorded()
	if len(calls) < 2 || !strings.HasPrefix(calls[0], "exec /bin/setup") || !strings.HasPrefix(calls[1], "stop") {
		t.Errorf("calls %q, want the hook then the stop", calls)
	}
}

func TestActiveDeadlineFailsPod(t *testing.T) {
	env := newTestEnv(t, nil, testPod("job", "uid-1", func(p *v1.Pod) {
		d := int64(1)
		p.Spec.ActiveDeadlineSeconds = &d
	}))
	env.start()
	env.eventually("Failed with DeadlineExceeded", func() bool {
		p := env.getPod("job")
		return p.Status.Phase == v1.PodFailed && p.Status.Reason == reasonDeadlineExceeded
	})
	env.eventually("containers stopped", func() bool {
		for _, st := range containerIDs(env.runtime) {
			if st == runtimeapi.ContainerState_CONTAINER_RUNNING {
				return false
			}
		}
		return true
	})
	env.eventually("terminated state and reason kept", func() bool {
		p := env.getPod("job")
		cs := containerStatusOf(p)
		return p.Status.Message == messageDeadlineExceeded && cs.State.Terminated != nil && p.Status.Phase == v1.PodFailed
	})
	var log eventLog
	if evs := strings.Join(env.drainEvents(&log), "\n"); !strings.Contains(evs, "Normal DeadlineExceeded "+messageDeadlineExceeded) {
		t.Errorf("events:\n%s", evs)
	}
}

func TestActiveDeadlineLeft(t *testing.T) {
	now := time.Now()
	pod := testPod("p", "u")
	if _, ok := activeDeadlineLeft(pod, now); ok {
		t.Error("deadline without activeDeadlineSeconds")
	}
	d := int64(60)
	pod.Spec.ActiveDeadlineSeconds = &d
	if _, ok := activeDeadlineLeft(pod, now); ok {
		t.Error("deadline before the pod started")
	}
	start := metav1.NewTime(now.Add(-45 * time.Second))
	pod.Status.StartTime = &start
	if left, ok := activeDeadlineLeft(pod, now); !ok || left != 15*time.Second {
		t.Errorf("left %v %v, want 15s", left, ok)
	}
}
