package agent

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// Label values of kubelet_started_containers_total{container_type}, kubelet's.
const (
	containerTypeRegular = "container"
	containerTypeInit    = "init_container"
)

// agentMetrics is the agent's Prometheus registry, served on the kubelet API's /metrics
// with kubelet's metric names. It is the Agent's own registry, not the global one, so
// that two agents in one process (tests, several nodes) count separately. Hooks into the
// rest of the agent are nil-safe methods, so an Agent built without metrics still runs.
type agentMetrics struct {
	registry *prometheus.Registry
	handler  http.Handler

	runningPods       prometheus.Gauge
	runningContainers *prometheus.GaugeVec
	podStartDuration  prometheus.Histogram
	podWorkerDuration *prometheus.HistogramVec
	runtimeOps        *prometheus.CounterVec
	runtimeOpErrors   *prometheus.CounterVec
	runtimeOpDuration *prometheus.HistogramVec
	plegRelist        prometheus.Histogram
	startedPods       prometheus.Counter
	startedContainers *prometheus.CounterVec

	// scrapeMu serializes scrapes: each recounts the running gauges before gathering.
	scrapeMu sync.Mutex

	// podStarts holds the pods whose start is being timed, from their first status
	// report until they terminate.
	mu        sync.Mutex
	podStarts map[types.UID]podStart
}

type podStart struct {
	firstSeen time.Time
	observed  bool
}

// newAgentMetrics builds the registry and wraps cfg.Runtime and cfg.Images in the
// instrumenting decorators, so every CRI call the agent makes is counted and timed.
func newAgentMetrics(cfg *Config) *agentMetrics {
	m := &agentMetrics{
		registry: prometheus.NewRegistry(),
		runningPods: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kubelet_running_pods", Help: "Number of pods that have a running pod sandbox",
		}),
		runningContainers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kubelet_running_containers", Help: "Number of containers currently running",
		}, []string{"container_state"}),
		podStartDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kubelet_pod_start_duration_seconds",
			Help: "Duration in seconds from the pod's creation to the agent seeing all its containers running",
			// kubelet's buckets: from under a second (cached image) to an hour (slow pulls).
			Buckets: []float64{0.5, 1, 2, 3, 4, 5, 6, 8, 10, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600},
		}),
		podWorkerDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kubelet_pod_worker_duration_seconds",
			Help: "Duration in seconds to sync a single pod. Broken down by operation type: sync, kill or terminated",
		}, []string{"operation"}),
		runtimeOps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kubelet_runtime_operations_total", Help: "Cumulative number of runtime operations by operation type.",
		}, []string{"operation_type"}),
		runtimeOpErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kubelet_runtime_operations_errors_total", Help: "Cumulative number of runtime operation errors by operation type.",
		}, []string{"operation_type"}),
		runtimeOpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kubelet_runtime_operations_duration_seconds",
			Help:    "Duration in seconds of runtime operations. Broken down by operation type.",
			Buckets: prometheus.ExponentialBuckets(.005, 2.5, 14),
		}, []string{"operation_type"}),
		plegRelist: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kubelet_pleg_relist_duration_seconds", Help: "Duration in seconds for relisting pods in PLEG.",
		}),
		startedPods: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kubelet_started_pods_total", Help: "Cumulative number of pods started (pod sandboxes run)",
		}),
		startedContainers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kubelet_started_containers_total", Help: "Cumulative number of containers started",
		}, []string{"container_type"}),
		podStarts: map[types.UID]podStart{},
	}
	nodeName := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kubelet_node_name", Help: "The node's name. The count is always 1.",
	}, []string{"node"})
	nodeName.WithLabelValues(cfg.NodeName).Set(1)
	m.registry.MustRegister(m.runningPods, m.runningContainers, m.podStartDuration, m.podWorkerDuration,
		m.runtimeOps, m.runtimeOpErrors, m.runtimeOpDuration, m.plegRelist, m.startedPods, m.startedContainers, nodeName,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.handler = promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
	cfg.Runtime = &instrumentedRuntime{RuntimeService: cfg.Runtime, m: m}
	cfg.Images = &instrumentedImages{ImageManagerService: cfg.Images, m: m}
	return m
}

// serveMetrics is GET /metrics: the running gauges are recounted from the runtime, then
// the registry is written in the Prometheus text format.
func (a *Agent) serveMetrics(w http.ResponseWriter, r *http.Request) {
	m := a.metrics
	if m == nil {
		http.Error(w, "metrics are not enabled", http.StatusNotFound)
		return
	}
	m.scrapeMu.Lock()
	defer m.scrapeMu.Unlock()
	if err := a.countRunning(r.Context()); err != nil {
		// The counters and histograms are still worth serving; the gauges keep their last count.
		klog.FromContext(r.Context()).V(2).Info("Counting running pods and containers for /metrics", "err", err)
	}
	m.handler.ServeHTTP(w, r)
}

// countRunning sets kubelet_running_pods (pods with a ready sandbox) and
// kubelet_running_containers by state, from what the runtime holds for this node.
func (a *Agent) countRunning(ctx context.Context) error {
	sel := map[string]string{labelNode: a.cfg.NodeName}
	sandboxes, err := a.cfg.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: sel})
	if err != nil {
		return fmt.Errorf("list sandboxes: %w", err)
	}
	containers, err := a.cfg.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: sel})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	running := map[string]bool{}
	for _, sb := range sandboxes {
		if sb.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			running[sb.Labels[labelPodUID]] = true
		}
	}
	a.metrics.runningPods.Set(float64(len(running)))
	byState := map[string]float64{"created": 0, "running": 0, "exited": 0, "unknown": 0}
	for _, c := range containers {
		byState[containerStateLabel(c.State)]++
	}
	for state, n := range byState {
		a.metrics.runningContainers.WithLabelValues(state).Set(n)
	}
	return nil
}

// containerStateLabel is kubelet's container_state value: CONTAINER_RUNNING → "running".
func containerStateLabel(s runtimeapi.ContainerState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "CONTAINER_"))
}

// observeRelist records one PLEG relist; call it as defer m.observeRelist(time.Now()).
func (m *agentMetrics) observeRelist(start time.Time) {
	if m == nil {
		return
	}
	m.plegRelist.Observe(time.Since(start).Seconds())
}

// containerStarting counts a container about to be started, like kubelet before its
// StartContainer call.
func (m *agentMetrics) containerStarting(pod *v1.Pod, c *v1.Container) {
	if m == nil {
		return
	}
	kind := containerTypeRegular
	if isInitContainer(pod, c.Name) {
		kind = containerTypeInit
	}
	m.startedContainers.WithLabelValues(kind).Inc()
}

// observePodStatus times the pod's start: from its creation (or, without a creation
// timestamp, from its first status report) to the first status in which every app
// container runs. Each pod is observed once; a pod already running when this agent first
// reports it (adopted after an agent restart) started under an earlier agent and is not.
func (m *agentMetrics) observePodStatus(pod *v1.Pod, status v1.PodStatus) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st, seen := m.podStarts[pod.UID]
	if !seen {
		st = podStart{firstSeen: time.Now(), observed: allContainersRunning(pod, pod.Status)}
	}
	if !st.observed && allContainersRunning(pod, status) {
		from := pod.CreationTimestamp.Time
		if from.IsZero() {
			from = st.firstSeen
		}
		m.podStartDuration.Observe(time.Since(from).Seconds())
		st.observed = true
	}
	m.podStarts[pod.UID] = st
}

// forgetPod drops a terminating pod's start record.
func (m *agentMetrics) forgetPod(uid types.UID) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.podStarts, uid)
}

// allContainersRunning reports whether status shows every app container of pod running.
func allContainersRunning(pod *v1.Pod, status v1.PodStatus) bool {
	if len(pod.Spec.Containers) == 0 {
		return false
	}
	running := map[string]bool{}
	for _, cs := range status.ContainerStatuses {
		running[cs.Name] = cs.State.Running != nil
	}
	for _, c := range pod.Spec.Containers {
		if !running[c.Name] {
			return false
		}
	}
	return true
}

// instrumentSyncer times the pod workers' syncs into kubelet_pod_worker_duration_seconds
// by wrapping the syncer they call, so the workers themselves know nothing of metrics.
func (m *agentMetrics) instrumentSyncer(s podSyncer) podSyncer {
	if m == nil {
		return s
	}
	return &instrumentedSyncer{podSyncer: s, m: m}
}

// instrumentedSyncer labels the three syncs with kubelet's operation names where kubelet
// has one: sync (a running pod), kill (terminating) and terminated (cleanup, skiff's).
type instrumentedSyncer struct {
	podSyncer
	m *agentMetrics
}

func (s *instrumentedSyncer) observe(op string, start time.Time) {
	s.m.podWorkerDuration.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

func (s *instrumentedSyncer) syncPod(ctx context.Context, pod *v1.Pod) (time.Duration, bool, error) {
	defer s.observe("sync", time.Now())
	return s.podSyncer.syncPod(ctx, pod)
}

func (s *instrumentedSyncer) syncTerminatingPod(ctx context.Context, pod *v1.Pod, removed bool) error {
	defer s.observe("kill", time.Now())
	s.m.forgetPod(pod.UID)
	return s.podSyncer.syncTerminatingPod(ctx, pod, removed)
}

func (s *instrumentedSyncer) syncTerminatedPod(ctx context.Context, pod *v1.Pod, removed bool) error {
	defer s.observe("terminated", time.Now())
	return s.podSyncer.syncTerminatedPod(ctx, pod, removed)
}
