package agent

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// startContainer starts the next attempt of one container: back-off check, image, create,
// start. It returns why the container waits (nil when it started), when to retry, and
// whether anything changed in the runtime.
func (a *Agent) startContainer(ctx context.Context, pod *v1.Pod, rp *runtimePod, c *v1.Container,
	sandboxID string, sandboxCfg *runtimeapi.PodSandboxConfig, podIPs []string) (*waiting, time.Duration, bool) {
	prev := rp.containersNamed(c.Name)
	restartCount := 0
	if len(prev) > 0 {
		restartCount = restartCountOf(prev[0]) + 1
		if w, retry := a.crashBackOff(pod, c, prev[0]); w != nil {
			return w, retry, false
		}
	}
	imageRef, w, retry := a.puller.ensureImage(ctx, pod, c, sandboxCfg)
	if w != nil {
		return w, retry, false
	}
	ref := containerRef(pod, c.Name)
	if err := a.checkRunAsNonRoot(ctx, pod, c, imageRef); err != nil {
		a.recorder.Eventf(ref, v1.EventTypeWarning, eventFailed, "Error: %v", err)
		return &waiting{reasonCreateConfigError, err.Error()}, syncErrorRetry, false
	}
	cfg, err := a.containerConfig(ctx, pod, containerStartInput{container: c, restartCount: restartCount, imageRef: imageRef, podIPs: podIPs})
	if err != nil {
		a.recorder.Eventf(ref, v1.EventTypeWarning, eventFailed, "Error: %v", err)
		return &waiting{reasonCreateConfigError, err.Error()}, syncErrorRetry, false
	}
	id, err := a.cfg.Runtime.CreateContainer(ctx, sandboxID, cfg, sandboxCfg)
	if err != nil {
		a.recorder.Eventf(ref, v1.EventTypeWarning, eventFailed, "Error: %v", err)
		return &waiting{reasonCreateContainerError, err.Error()}, syncErrorRetry, false
	}
	a.recorder.Eventf(ref, v1.EventTypeNormal, eventCreated, "Created container: %s", c.Name)
	a.metrics.containerStarting(pod, c)
	if err := a.cfg.Runtime.StartContainer(ctx, id); err != nil {
		a.recorder.Eventf(ref, v1.EventTypeWarning, eventFailed, "Error: %v", err)
		return &waiting{reasonRunContainerError, err.Error()}, syncErrorRetry, true
	}
	a.recorder.Eventf(ref, v1.EventTypeNormal, eventStarted, "Started container %s", c.Name)
	hookIP := ""
	if len(podIPs) > 0 {
		hookIP = podIPs[0]
	}
	if msg, ok := a.runPostStart(ctx, hookTarget{pod: pod, container: c, containerID: id, podIP: hookIP}, podGracePeriod(pod)); !ok {
		a.pruneContainers(ctx, prev)
		return &waiting{reasonPostStartHookError, msg}, 0, true
	}
	klog.FromContext(ctx).V(2).Info("Started container", "pod", klog.KObj(pod), "container", c.Name, "id", id, "restartCount", restartCount)
	a.pruneContainers(ctx, prev)
	return nil, 0, true
}

// crashBackOff applies kubelet's restart back-off: the first restart is immediate, then
// 10s, doubling to 5m, measured from when the last attempt exited.
func (a *Agent) crashBackOff(pod *v1.Pod, c *v1.Container, last *runtimeapi.ContainerStatus) (*waiting, time.Duration) {
	if last.State != runtimeapi.ContainerState_CONTAINER_EXITED || last.FinishedAt == 0 {
		return nil, 0
	}
	key := fmt.Sprintf("%s/%s/%s", pod.UID, c.Name, containerHash(c))
	finished := time.Unix(0, last.FinishedAt)
	if a.crashBackoff.IsInBackOffSince(key, finished) {
		delay := a.crashBackoff.Get(key)
		a.recorder.Eventf(containerRef(pod, c.Name), v1.EventTypeWarning, eventBackOff,
			"Back-off restarting failed container %s in pod %s", c.Name, podDesc(pod))
		msg := fmt.Sprintf("back-off %v restarting failed container=%s pod=%s", delay, c.Name, podDesc(pod))
		return &waiting{reasonCrashLoopBackOff, msg}, max(delay-a.crashBackoff.Clock.Since(finished), 10*time.Millisecond)
	}
	a.crashBackoff.Next(key, finished)
	return nil, 0
}

// pruneContainers removes dead attempts of a container except the newest one, which
// kubectl logs --previous and lastState still need. prev is newest first and predates
// the attempt just started.
func (a *Agent) pruneContainers(ctx context.Context, prev []*runtimeapi.ContainerStatus) {
	for i, c := range prev {
		if i == 0 || c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			continue
		}
		if err := a.cfg.Runtime.RemoveContainer(ctx, c.Id); err != nil && !isNotFound(err) {
			klog.FromContext(ctx).Error(err, "Removing old container", "id", c.Id)
		}
	}
}
