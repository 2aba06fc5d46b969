package agent

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"
)

// scrape serves /metrics as the apiserver's kubelet client would ask for it.
func scrape(t *testing.T, a *Agent) string {
	t.Helper()
	rec := serve(a.kubeletHandler(), authed(httptest.NewRequest("GET", "/metrics", nil)))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", rec.Code, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("/metrics content type %q, want the Prometheus text format", ct)
	}
	return rec.Body.String()
}

// sample finds one series (name{labels} exactly as exposed) in a text exposition.
func sample(body, series string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

func wantSample(t *testing.T, body, series string, want float64) {
	t.Helper()
	got, ok := sample(body, series)
	if !ok || got != want {
		t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
	}
}

func wantPositive(t *testing.T, body, series string) {
	t.Helper()
	if got, ok := sample(body, series); !ok || got <= 0 {
		t.Errorf("%s = %v (present %v), want > 0", series, got, ok)
	}
}

func TestInstrumentedRuntimeCountsOperations(t *testing.T) {
	rt, images := critest.NewFakeRuntimeService(), critest.NewFakeImageService()
	// The handler only checks that a client CA is configured; authed() stands for the TLS check.
	cfg := Config{NodeName: testNode, Runtime: rt, Images: images, ClientCAFile: "ca.pem"}
	m := newAgentMetrics(&cfg)
	a := &Agent{cfg: cfg, metrics: m}
	body := scrape(t, a)
	wantSample(t, body, `kubelet_started_pods_total`, 0)
	wantSample(t, body, `kubelet_node_name{node="node-1"}`, 1)
	if _, ok := sample(body, `kubelet_runtime_operations_total{operation_type="run_podsandbox"}`); ok {
		t.Error("run_podsandbox counted before any call")
	}

	ctx := context.Background()
	sbCfg := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "default", Uid: "uid-1"},
		Labels:   map[string]string{labelNode: testNode, labelPodUID: "uid-1"},
	}
	sb, err := cfg.Runtime.RunPodSandbox(ctx, sbCfg, "")
	if err != nil {
		t.Fatal(err)
	}
	id, err := cfg.Runtime.CreateContainer(ctx, sb, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "c"}, Image: &runtimeapi.ImageSpec{Image: "nginx"},
		Labels: map[string]string{labelNode: testNode, labelPodUID: "uid-1"},
	}, sbCfg)
	if err != nil {
		t.Fatal(err)
	}
	rt.InjectError("StartContainer", errors.New("boom"))
	if err := cfg.Runtime.StartContainer(ctx, id); err == nil {
		t.Fatal("the injected StartContainer error did not come through the decorator")
	}
	if err := cfg.Runtime.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.Images.PullImage(ctx, &runtimeapi.ImageSpec{Image: "busybox"}, nil, nil); err != nil {
		t.Fatal(err)
	}

	body = scrape(t, a)
	wantSample(t, body, `kubelet_started_pods_total`, 1)
	wantSample(t, body, `kubelet_runtime_operations_total{operation_type="run_podsandbox"}`, 1)
	wantSample(t, body, `kubelet_runtime_operations_total{operation_type="start_container"}`, 2)
	wantSample(t, body, `kubelet_runtime_operations_errors_total{operation_type="start_container"}`, 1)
	wantSample(t, body, `kubelet_runtime_operations_total{operation_type="pull_image"}`, 1)
	wantSample(t, body, `kubelet_runtime_operations_duration_seconds_count{operation_type="create_container"}`, 1)
	if _, ok := sample(body, `kubelet_runtime_operations_errors_total{operation_type="run_podsandbox"}`); ok {
		t.Error("a successful call was counted as an error")
	}
	// The scrape itself recounted the running objects, through the decorator.
	wantSample(t, body, `kubelet_running_pods`, 1)
	wantSample(t, body, `kubelet_running_containers{container_state="running"}`, 1)
	wantSample(t, body, `kubelet_running_containers{container_state="exited"}`, 0)
	wantSample(t, body, `kubelet_runtime_operations_total{operation_type="list_podsandbox"}`, 2)

	// Each agent has its own registry: a second one starts from zero.
	cfg2 := Config{NodeName: "node-2", ClientCAFile: "ca.pem", Runtime: critest.NewFakeRuntimeService(), Images: critest.NewFakeImageService()}
	other := &Agent{cfg: cfg2, metrics: newAgentMetrics(&cfg2)}
	wantSample(t, scrape(t, other), `kubelet_started_pods_total`, 0)
}

func TestPodStartObservedOnce(t *testing.T) {
	cfg := Config{NodeName: testNode, ClientCAFile: "ca.pem", Runtime: critest.NewFakeRuntimeService(), Images: critest.NewFakeImageService()}
	m := newAgentMetrics(&cfg)
	a := &Agent{cfg: cfg, metrics: m}
	running := v1.PodStatus{ContainerStatuses: []v1.ContainerStatus{{Name: "nginx", State: v1.ContainerState{Running: &v1.ContainerStateRunning{}}}}}
	waiting := v1.PodStatus{ContainerStatuses: []v1.ContainerStatus{{Name: "nginx", State: v1.ContainerState{Waiting: &v1.ContainerStateWaiting{}}}}}

	fresh := testPod("fresh", "uid-fresh")
	fresh.CreationTimestamp = metav1.NewTime(time.Now().Add(-3 * time.Second))
	m.observePodStatus(fresh, waiting)
	m.observePodStatus(fresh, running)
	m.observePodStatus(fresh, running) // a later sync of the same running pod
	// A pod already running in the apiserver when first seen: started under an earlier agent.
	adopted := testPod("adopted", "uid-adopted")
	adopted.Status = running
	m.observePodStatus(adopted, running)

	body := scrape(t, a)
	wantSample(t, body, `kubelet_pod_start_duration_seconds_count`, 1)
	if sum, _ := sample(body, `kubelet_pod_start_duration_seconds_sum`); sum < 3 || sum > 60 {
		t.Errorf("pod start took %vs, want the ~3s since its creation", sum)
	}
	wantSample(t, body, `kubelet_pod_start_duration_seconds_bucket{le="2"}`, 0)
	wantSample(t, body, `kubelet_pod_start_duration_seconds_bucket{le="4"}`, 1)

	m.forgetPod(fresh.UID)
	m.forgetPod(adopted.UID)
	if len(m.podStarts) != 0 {
		t.Errorf("start records left after the pods terminated: %v", m.podStarts)
	}
}

func TestMetricsEndpointFollowsPods(t *testing.T) {
	env := newTestEnv(t, nil, testPod("web", "uid-1"))
	h := env.agent.kubeletHandler()
	if rec := serve(h, httptest.NewRequest("GET", "/metrics", nil)); rec.Code != http.StatusForbidden {
		t.Errorf("/metrics without a client certificate: %d, want 403", rec.Code)
	}
	env.agent.cfg.ClientCAFile, _ = testCA(t)
	env.start()
	env.eventually("pod running", func() bool { return runningWithIP(env.getPod("web")) })
	env.eventually("pleg relisted", func() bool {
		n, _ := sample(scrape(t, env.agent), `kubelet_pleg_relist_duration_seconds_count`)
		return n > 0
	})
	// A sync is timed when it returns, which can be after the status it wrote is seen.
	env.eventually("a sync timed", func() bool {
		n, _ := sample(scrape(t, env.agent), `kubelet_pod_worker_duration_seconds_count{operation="sync"}`)
		return n > 0
	})

	body := scrape(t, env.agent)
	wantSample(t, body, `kubelet_running_pods`, 1)
	wantSample(t, body, `kubelet_running_containers{container_state="running"}`, 1)
	wantSample(t, body, `kubelet_started_pods_total`, 1)
	wantSample(t, body, `kubelet_started_containers_total{container_type="container"}`, 1)
	wantSample(t, body, `kubelet_pod_start_duration_seconds_count`, 1)
	wantPositive(t, body, `kubelet_pod_worker_duration_seconds_count{operation="sync"}`)
	wantPositive(t, body, `kubelet_runtime_operations_total{operation_type="list_containers"}`)
	wantPositive(t, body, `kubelet_runtime_operations_total{operation_type="pull_image"}`)
	if _, ok := sample(body, `kubelet_pod_worker_duration_seconds_count{operation="kill"}`); ok {
		t.Error("a kill was timed for a pod that is still running")
	}

	if err := env.client.CoreV1().Pods("default").Delete(context.Background(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	env.eventually("pod gone from the runtime", func() bool {
		body := scrape(t, env.agent)
		n, _ := sample(body, `kubelet_running_pods`)
		kills, _ := sample(body, `kubelet_pod_worker_duration_seconds_count{operation="kill"}`)
		return n == 0 && kills > 0
	})
	wantSample(t, scrape(t, env.agent), `kubelet_running_containers{container_state="running"}`, 0)
}
