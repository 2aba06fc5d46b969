package agent

import (
	"context"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// instrumentedRuntime counts and times every CRI runtime call the agent makes, kubelet's
// kubelet_runtime_operations_* metrics, with kubelet's operation_type names. It wraps the
// runtime once, in New, so that no caller has to know about metrics. Close is passed
// through unrecorded, as kubelet does.
type instrumentedRuntime struct {
	internalapi.RuntimeService
	m *agentMetrics
}

// instrumentedImages is the same for the image service.
type instrumentedImages struct {
	internalapi.ImageManagerService
	m *agentMetrics
}

// record observes one finished operation; call it as defer m.record(op, time.Now(), &err).
func (m *agentMetrics) record(op string, start time.Time, err *error) {
	m.runtimeOps.WithLabelValues(op).Inc()
	m.runtimeOpDuration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if *err != nil {
		m.runtimeOpErrors.WithLabelValues(op).Inc()
	}
}

func (r *instrumentedRuntime) Version(ctx context.Context, apiVersion string) (resp *runtimeapi.VersionResponse, err error) {
	defer r.m.record("version", time.Now(), &err)
	return r.RuntimeService.Version(ctx, apiVersion)
}

func (r *instrumentedRuntime) Status(ctx context.Context, verbose bool) (resp *runtimeapi.StatusResponse, err error) {
	defer r.m.record("status", time.Now(), &err)
	return r.RuntimeService.Status(ctx, verbose)
}

func (r *instrumentedRuntime) RuntimeConfig(ctx context.Context) (resp *runtimeapi.RuntimeConfigResponse, err error) {
	defer r.m.record("runtime_config", time.Now(), &err)
	return r.RuntimeService.RuntimeConfig(ctx)
}

func (r *instrumentedRuntime) UpdateRuntimeConfig(ctx context.Context, cfg *runtimeapi.RuntimeConfig) (err error) {
	defer r.m.record("update_runtime_config", time.Now(), &err)
	return r.RuntimeService.UpdateRuntimeConfig(ctx, cfg)
}

func (r *instrumentedRuntime) CreateContainer(ctx context.Context, podSandboxID string, config *runtimeapi.ContainerConfig, sandboxConfig *runtimeapi.PodSandboxConfig) (id string, err error) {
	defer r.m.record("create_container", time.Now(), &err)
	return r.RuntimeService.CreateContainer(ctx, podSandboxID, config, sandboxConfig)
}

func (r *instrumentedRuntime) StartContainer(ctx context.Context, containerID string) (err error) {
	defer r.m.record("start_container", time.Now(), &err)
	return r.RuntimeService.StartContainer(ctx, containerID)
}

func (r *instrumentedRuntime) StopContainer(ctx context.Context, containerID string, timeout int64) (err error) {
	defer r.m.record("stop_container", time.Now(), &err)
	return r.RuntimeService.StopContainer(ctx, containerID, timeout)
}

func (r *instrumentedRuntime) RemoveContainer(ctx context.Context, containerID string) (err error) {
	defer r.m.record("remove_container", time.Now(), &err)
	return r.RuntimeService.RemoveContainer(ctx, containerID)
}

func (r *instrumentedRuntime) ListContainers(ctx context.Context, filter *runtimeapi.ContainerFilter) (cs []*runtimeapi.Container, err error) {
	defer r.m.record("list_containers", time.Now(), &err)
	return r.RuntimeService.ListContainers(ctx, filter)
}

func (r *instrumentedRuntime) ContainerStatus(ctx context.Context, containerID string, verbose bool) (resp *runtimeapi.ContainerStatusResponse, err error) {
	defer r.m.record("container_status", time.Now(), &err)
	return r.RuntimeService.ContainerStatus(ctx, containerID, verbose)
}

func (r *instrumentedRuntime) UpdateContainerResources(ctx context.Context, containerID string, resources *runtimeapi.ContainerResources) (err error) {
	defer r.m.record("update_container", time.Now(), &err)
	return r.RuntimeService.UpdateContainerResources(ctx, containerID, resources)
}

func (r *instrumentedRuntime) ExecSync(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (stdout, stderr []byte, err error) {
	defer r.m.record("exec_sync", time.Now(), &err)
	return r.RuntimeService.ExecSync(ctx, containerID, cmd, timeout)
}

func (r *instrumentedRuntime) Exec(ctx context.Context, req *runtimeapi.ExecRequest) (resp *runtimeapi.ExecResponse, err error) {
	defer r.m.record("exec", time.Now(), &err)
	return r.RuntimeService.Exec(ctx, req)
}

func (r *instrumentedRuntime) Attach(ctx context.Context, req *runtimeapi.AttachRequest) (resp *runtimeapi.AttachResponse, err error) {
	defer r.m.record("attach", time.Now(), &err)
	return r.RuntimeService.Attach(ctx, req)
}

func (r *instrumentedRuntime) ReopenContainerLog(ctx context.Context, containerID string) (err error) {
	defer r.m.record("reopen_container_log", time.Now(), &err)
	return r.RuntimeService.ReopenContainerLog(ctx, containerID)
}

func (r *instrumentedRuntime) CheckpointContainer(ctx context.Context, options *runtimeapi.CheckpointContainerRequest) (err error) {
	defer r.m.record("checkpoint_container", time.Now(), &err)
	return r.RuntimeService.CheckpointContainer(ctx, options)
}

// GetContainerEvents is a stream: its duration is how long the stream lasted.
func (r *instrumentedRuntime) GetContainerEvents(ctx context.Context, ch chan *runtimeapi.ContainerEventResponse, established func(runtimeapi.RuntimeService_GetContainerEventsClient)) (err error) {
	defer r.m.record("get_container_events", time.Now(), &err)
	return r.RuntimeService.GetContainerEvents(ctx, ch, established)
}

func (r *instrumentedRuntime) RunPodSandbox(ctx context.Context, config *runtimeapi.PodSandboxConfig, runtimeHandler string) (id string, err error) {
	defer r.m.record("run_podsandbox", time.Now(), &err)
	// kubelet_started_pods_total counts attempts, as kubelet counts before its call.
	r.m.startedPods.Inc()
	return r.RuntimeService.RunPodSandbox(ctx, config, runtimeHandler)
}

func (r *instrumentedRuntime) StopPodSandbox(ctx context.Context, podSandboxID string) (err error) {
	defer r.m.record("stop_podsandbox", time.Now(), &err)
	return r.RuntimeService.StopPodSandbox(ctx, podSandboxID)
}

func (r *instrumentedRuntime) RemovePodSandbox(ctx context.Context, podSandboxID string) (err error) {
	defer r.m.record("remove_podsandbox", time.Now(), &err)
	return r.RuntimeService.RemovePodSandbox(ctx, podSandboxID)
}

func (r *instrumentedRuntime) PodSandboxStatus(ctx context.Context, podSandboxID string, verbose bool) (resp *runtimeapi.PodSandboxStatusResponse, err error) {
	defer r.m.record("podsandbox_status", time.Now(), &err)
	return r.RuntimeService.PodSandboxStatus(ctx, podSandboxID, verbose)
}

func (r *instrumentedRuntime) ListPodSandbox(ctx context.Context, filter *runtimeapi.PodSandboxFilter) (sbs []*runtimeapi.PodSandbox, err error) {
	defer r.m.record("list_podsandbox", time.Now(), &err)
	return r.RuntimeService.ListPodSandbox(ctx, filter)
}

func (r *instrumentedRuntime) PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (resp *runtimeapi.PortForwardResponse, err error) {
	defer r.m.record("port_forward", time.Now(), &err)
	return r.RuntimeService.PortForward(ctx, req)
}

func (r *instrumentedRuntime) UpdatePodSandboxResources(ctx context.Context, req *runtimeapi.UpdatePodSandboxResourcesRequest) (resp *runtimeapi.UpdatePodSandboxResourcesResponse, err error) {
	defer r.m.record("update_podsandbox_resources", time.Now(), &err)
	return r.RuntimeService.UpdatePodSandboxResources(ctx, req)
}

func (r *instrumentedRuntime) CheckpointPod(ctx context.Context, options *runtimeapi.CheckpointPodRequest) (err error) {
	defer r.m.record("checkpoint_pod", time.Now(), &err)
	return r.RuntimeService.CheckpointPod(ctx, options)
}

func (r *instrumentedRuntime) RestorePod(ctx context.Context, options *runtimeapi.RestorePodRequest) (resp *runtimeapi.RestorePodResponse, err error) {
	defer r.m.record("restore_pod", time.Now(), &err)
	return r.RuntimeService.RestorePod(ctx, options)
}

func (r *instrumentedRuntime) ContainerStats(ctx context.Context, containerID string) (st *runtimeapi.ContainerStats, err error) {
	defer r.m.record("container_stats", time.Now(), &err)
	return r.RuntimeService.ContainerStats(ctx, containerID)
}

func (r *instrumentedRuntime) ListContainerStats(ctx context.Context, filter *runtimeapi.ContainerStatsFilter) (sts []*runtimeapi.ContainerStats, err error) {
	defer r.m.record("list_container_stats", time.Now(), &err)
	return r.RuntimeService.ListContainerStats(ctx, filter)
}

func (r *instrumentedRuntime) PodSandboxStats(ctx context.Context, podSandboxID string) (st *runtimeapi.PodSandboxStats, err error) {
	defer r.m.record("podsandbox_stats", time.Now(), &err)
	return r.RuntimeService.PodSandboxStats(ctx, podSandboxID)
}

func (r *instrumentedRuntime) ListPodSandboxStats(ctx context.Context, filter *runtimeapi.PodSandboxStatsFilter) (sts []*runtimeapi.PodSandboxStats, err error) {
	defer r.m.record("list_podsandbox_stats", time.Now(), &err)
	return r.RuntimeService.ListPodSandboxStats(ctx, filter)
}

func (r *instrumentedRuntime) ListMetricDescriptors(ctx context.Context) (ds []*runtimeapi.MetricDescriptor, err error) {
	defer r.m.record("list_metric_descriptors", time.Now(), &err)
	return r.RuntimeService.ListMetricDescriptors(ctx)
}

func (r *instrumentedRuntime) ListPodSandboxMetrics(ctx context.Context) (ms []*runtimeapi.PodSandboxMetrics, err error) {
	defer r.m.record("list_podsandbox_metrics", time.Now(), &err)
	return r.RuntimeService.ListPodSandboxMetrics(ctx)
}

func (r *instrumentedImages) ListImages(ctx context.Context, filter *runtimeapi.ImageFilter) (imgs []*runtimeapi.Image, err error) {
	defer r.m.record("list_images", time.Now(), &err)
	return r.ImageManagerService.ListImages(ctx, filter)
}

func (r *instrumentedImages) ImageStatus(ctx context.Context, image *runtimeapi.ImageSpec, verbose bool) (resp *runtimeapi.ImageStatusResponse, err error) {
	defer r.m.record("image_status", time.Now(), &err)
	return r.ImageManagerService.ImageStatus(ctx, image, verbose)
}

func (r *instrumentedImages) PullImage(ctx context.Context, image *runtimeapi.ImageSpec, auth *runtimeapi.AuthConfig, podSandboxConfig *runtimeapi.PodSandboxConfig) (ref string, err error) {
	defer r.m.record("pull_image", time.Now(), &err)
	return r.ImageManagerService.PullImage(ctx, image, auth, podSandboxConfig)
}

func (r *instrumentedImages) RemoveImage(ctx context.Context, image *runtimeapi.ImageSpec) (err error) {
	defer r.m.record("remove_image", time.Now(), &err)
	return r.ImageManagerService.RemoveImage(ctx, image)
}

func (r *instrumentedImages) ImageFsInfo(ctx context.Context) (resp *runtimeapi.ImageFsInfoResponse, err error) {
	defer r.m.record("image_fs_info", time.Now(), &err)
	return r.ImageManagerService.ImageFsInfo(ctx)
}
