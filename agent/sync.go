package agent

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// reasonCache remembers why each container of a pod waited at the last sync (kubelet's
// reasonCache), so a status reported before acting does not flap from CrashLoopBackOff
// to the last exit and back.
type reasonCache struct {
	mu      sync.Mutex
	reasons map[types.UID]map[string]waiting
}

func newReasonCache() *reasonCache {
	return &reasonCache{reasons: map[types.UID]map[string]waiting{}}
}

func (c *reasonCache) get(uid types.UID) map[string]waiting {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reasons[uid]
}

func (c *reasonCache) set(uid types.UID, w map[string]waiting) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reasons[uid] = w
}

func (c *reasonCache) forget(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.reasons, uid)
}

// syncResult is what acting on a plan produced: why containers wait, when to come back,
// and whether the runtime state changed (so status must be read again).
type syncResult struct {
	waiting map[string]waiting
	requeue time.Duration
	changed bool
	err     error
}

func (r *syncResult) retryIn(d time.Duration) {
	if d > 0 && (r.requeue == 0 || d < r.requeue) {
		r.requeue = d
	}
}

// syncPod is one pass of plan-then-act for a running pod, followed by a status report.
func (a *Agent) syncPod(ctx context.Context, pod *v1.Pod) (time.Duration, bool, error) {
	rp, err := a.getRuntimePod(ctx, pod.UID)
	if err != nil {
		return 0, false, err
	}
	if reason, msg, ok := a.admitter.admit(pod, !rp.empty(), a.allocatable()); !ok {
		return 0, true, a.rejectPod(ctx, pod, reason, msg)
	}
	if retry, ok := a.setupPodVolumes(ctx, pod, rp); !ok {
		return retry, false, nil
	}
	deadlineLeft, hasDeadline := activeDeadlineLeft(a.statuses.withStartTime(pod), time.Now())
	if hasDeadline && deadlineLeft <= 0 {
		return 0, true, a.failPastDeadline(ctx, pod)
	}
	actions := computePodActions(pod, rp, func(c *v1.Container, id string) (string, bool) {
		return a.prober.containerUnhealthy(pod, c, id)
	})
	if actions.createSandbox || actions.startsAny() {
		// Report what is there before the slow part (sandbox, pulls), as kubelet does, so
		// the pod shows ContainerCreating rather than nothing while it starts.
		a.reportStatus(ctx, pod, rp, a.reasons.get(pod.UID))
	}
	res := a.applyActions(ctx, pod, rp, actions)
	a.reasons.set(pod.UID, res.waiting)
	if res.changed {
		if rp, err = a.getRuntimePod(ctx, pod.UID); err != nil {
			return 0, false, err
		}
	}
	a.ensureProbes(pod, rp)
	phase, err := a.reportStatus(ctx, pod, rp, res.waiting)
	if err != nil {
		res.retryIn(syncErrorRetry)
	}
	if hasDeadline {
		res.retryIn(deadlineLeft)
	} else if _, ok := activeDeadlineLeft(a.statuses.withStartTime(pod), time.Now()); ok {
		res.retryIn(time.Duration(*pod.Spec.ActiveDeadlineSeconds) * time.Second) // first sync: start time just set
	}
	return res.requeue, podPhaseTerminal(phase), res.err
}

// rejectPod fails a pod the node cannot take, as kubelet's admission does.
func (a *Agent) rejectPod(ctx context.Context, pod *v1.Pod, reason, msg string) error {
	a.recorder.Event(podRef(pod), v1.EventTypeWarning, reason, msg)
	status := *pod.Status.DeepCopy()
	status.Phase, status.Reason, status.Message = v1.PodFailed, reason, "Pod was rejected: "+msg
	status.QOSClass = podQOSClass(pod)
	return a.statuses.setPodStatus(ctx, pod, status)
}

// allocatable is what pods may use on this node.
func (a *Agent) allocatable() v1.ResourceList {
	disk, _ := diskCapacityBytes(a.cfg.RootDir)
	return a.machine.capacity(disk)
}

// ensureProbes starts the probes of the pod's running app containers.
func (a *Agent) ensureProbes(pod *v1.Pod, rp *runtimePod) {
	podIP := ""
	if ips := sandboxIPs(rp.sandboxStatus); len(ips) > 0 {
		podIP = ips[0]
	}
	if pod.Spec.HostNetwork {
		podIP = a.cfg.NodeIP
	}
	for _, c := range probedContainers(pod) {
		if c.LivenessProbe == nil && c.ReadinessProbe == nil && c.StartupProbe == nil {
			continue
		}
		if attempts := rp.containersNamed(c.Name); len(attempts) > 0 && attempts[0].State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			a.prober.ensure(pod, c, attempts[0].Id, time.Unix(0, attempts[0].StartedAt), podIP)
		}
	}
}

// reportStatus generates the pod's status and hands it to the status manager.
func (a *Agent) reportStatus(ctx context.Context, pod *v1.Pod, rp *runtimePod, waiting map[string]waiting) (v1.PodPhase, error) {
	status := a.generatePodStatus(pod, rp, waiting)
	a.metrics.observePodStatus(pod, status)
	if err := a.statuses.setPodStatus(ctx, pod, status); err != nil {
		if ctx.Err() == nil {
			klog.FromContext(ctx).Error(err, "Updating pod status", "pod", klog.KObj(pod))
		}
		return status.Phase, err
	}
	return status.Phase, nil
}

func (a *Agent) applyActions(ctx context.Context, pod *v1.Pod, rp *runtimePod, act podActions) syncResult {
	res := syncResult{waiting: map[string]waiting{}}
	if act.killPod && !rp.empty() {
		if len(rp.sandboxes) > 0 && act.createSandbox {
			a.recorder.Event(podRef(pod), v1.EventTypeNormal, eventSandboxChanged, "Pod sandbox changed, it will be killed and re-created.")
		}
		if err := a.killPod(ctx, pod, rp, podGracePeriod(pod)); err != nil {
			res.err = err
			return res
		}
		res.changed = true
	}
	sandboxID, attempt := act.sandboxID, uint32(0)
	if act.createSandbox {
		id, err := a.createSandbox(ctx, pod, act.sandboxAttempt)
		if err != nil {
			res.err, res.waiting = err, blockedWaiting(pod, err.Error())
			return res
		}
		sandboxID, attempt, res.changed = id, act.sandboxAttempt, true
	} else if sandboxID == "" {
		return res // the pod will not run again (restartPolicy Never)
	} else if len(rp.sandboxes) > 0 {
		attempt = rp.sandboxes[0].GetMetadata().GetAttempt()
	}
	for _, k := range act.containersToKill {
		if err := a.killContainer(ctx, pod, rp, k.id, k.name, k.reason, podGracePeriod(pod)); err != nil {
			res.err = err
			return res
		}
		res.changed = true
	}
	if !act.startsAny() {
		return res
	}
	sandboxCfg, err := a.sandboxConfig(pod, attempt)
	if err != nil {
		res.err = err
		return res
	}
	podIPs, err := a.sandboxIPs(ctx, pod, sandboxID)
	if err != nil {
		res.err = err
		return res
	}
	start := func(c *v1.Container) {
		w, retry, started := a.startContainer(ctx, pod, rp, c, sandboxID, sandboxCfg, podIPs)
		if w != nil {
			res.waiting[c.Name] = *w
		}
		res.retryIn(retry)
		res.changed = res.changed || started
	}
	if act.initToStart >= 0 {
		start(&pod.Spec.InitContainers[act.initToStart])
	}
	for _, i := range act.sidecarsToStart {
		start(&pod.Spec.InitContainers[i])
	}
	for _, i := range act.containersToStart {
		start(&pod.Spec.Containers[i])
	}
	return res
}

// createSandbox runs a new sandbox for the pod and reports failures as kubelet does.
func (a *Agent) createSandbox(ctx context.Context, pod *v1.Pod, attempt uint32) (string, error) {
	cfg, err := a.sandboxConfig(pod, attempt)
	if err == nil {
		err = a.ensurePodDirs(pod)
	}
	var id string
	if err == nil {
		id, err = a.cfg.Runtime.RunPodSandbox(ctx, cfg, runtimeHandler(pod))
	}
	if err != nil {
		a.recorder.Eventf(podRef(pod), v1.EventTypeWarning, eventFailedCreateSandbox, "Failed to create pod sandbox: %v", err)
		// Also the waiting message of the pod's containers (see blockedWaiting).
		return "", fmt.Errorf("failed to create pod sandbox: %w", err)
	}
	klog.FromContext(ctx).V(2).Info("Created pod sandbox", "pod", klog.KObj(pod), "sandbox", id, "attempt", attempt)
	if usesClusterDNS(pod) {
		a.recorder.Eventf(podRef(pod), v1.EventTypeWarning, "MissingClusterDNS",
			"pod: %q. kubelet does not have ClusterDNS IP configured and cannot create Pod using %q policy. Falling back to %q policy.",
			podDesc(pod), pod.Spec.DNSPolicy, v1.DNSDefault)
	}
	return id, nil
}

// blockedWaiting gives every container of a pod held back before any of them can start
// (sandbox, volumes) msg as its waiting message, under the reason it shows anyway
// (ContainerCreating, PodInitializing): kubelet leaves the message empty and says why
// only in events, which expire.
func blockedWaiting(pod *v1.Pod, msg string) map[string]waiting {
	w := make(map[string]waiting, len(pod.Spec.InitContainers)+len(pod.Spec.Containers))
	for _, c := range pod.Spec.InitContainers {
		w[c.Name] = waiting{message: msg}
	}
	for _, c := range pod.Spec.Containers {
		w[c.Name] = waiting{message: msg}
	}
	return w
}

func (a *Agent) sandboxIPs(ctx context.Context, pod *v1.Pod, sandboxID string) ([]string, error) {
	if pod.Spec.HostNetwork {
		return []string{a.cfg.NodeIP}, nil
	}
	resp, err := a.cfg.Runtime.PodSandboxStatus(ctx, sandboxID, false)
	if err != nil {
		return nil, fmt.Errorf("status of sandbox %s: %w", sandboxID, err)
	}
	return sandboxIPs(resp.GetStatus()), nil
}

func sandboxIPs(st *runtimeapi.PodSandboxStatus) []string {
	var ips []string
	if ip := st.GetNetwork().GetIp(); ip != "" {
		ips = append(ips, ip)
	}
	for _, extra := range st.GetNetwork().GetAdditionalIps() {
		if extra.GetIp() != "" {
			ips = append(ips, extra.GetIp())
		}
	}
	return ips
}

// runtimeHandler maps the pod's RuntimeClass to a CRI handler; the default handler until
// RuntimeClasses are served.
func runtimeHandler(pod *v1.Pod) string { return "" }

func (a *Agent) ensurePodDirs(pod *v1.Pod) error {
	if err := mkdirAll(a.podLogDir(pod)); err != nil {
		return err
	}
	return mkdirAll(a.podDir(pod))
}

func mkdirAll(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return nil
}
