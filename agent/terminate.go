package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// syncTerminatingPod stops the pod's containers with its grace period, then its sandbox.
// A pod that finished on its own (and is not being deleted) gets its final status written;
// its containers stay for kubectl logs until the pod is deleted.
func (a *Agent) syncTerminatingPod(ctx context.Context, pod *v1.Pod, removed bool) error {
	rp, err := a.getRuntimePod(ctx, pod.UID)
	if err != nil {
		return err
	}
	pod = describeOrphan(pod, rp)
	grace := podGracePeriod(pod)
	if removed && pod.DeletionGracePeriodSeconds == nil {
		grace = orphanGracePeriod(rp, grace)
	}
	klog.FromContext(ctx).V(2).Info("Terminating pod", "pod", klog.KObj(pod), "gracePeriod", grace)
	a.prober.removePod(pod.UID)
	a.reasons.forget(pod.UID)
	a.admitter.release(pod.UID)
	if err := a.killPod(ctx, pod, rp, grace); err != nil {
		return err
	}
	if removed || pod.DeletionTimestamp != nil {
		return nil
	}
	if rp, err = a.getRuntimePod(ctx, pod.UID); err != nil {
		return err
	}
	return a.statuses.setPodStatus(ctx, pod, a.generatePodStatus(pod, rp, nil))
}

// syncTerminatedPod removes what is left in the runtime and on disk, and deletes the pod
// object when the apiserver still has it (kubelet's final, grace-0 delete).
func (a *Agent) syncTerminatedPod(ctx context.Context, pod *v1.Pod, removed bool) error {
	rp, err := a.getRuntimePod(ctx, pod.UID)
	if err != nil {
		return err
	}
	pod = describeOrphan(pod, rp)
	if err := a.removeRuntimePod(ctx, rp); err != nil {
		return err
	}
	if pod.Name != "" {
		if err := os.RemoveAll(a.podLogDir(pod)); err != nil {
			return fmt.Errorf("remove pod log dir: %w", err)
		}
	}
	if err := a.teardownPodVolumes(ctx, pod.UID); err != nil {
		return err
	}
	if err := os.RemoveAll(a.podDir(pod)); err != nil {
		return fmt.Errorf("remove pod dir: %w", err)
	}
	for _, err := range a.removePodCgroups(pod.UID) {
		klog.FromContext(ctx).V(2).Info("Pod cgroup left in place", "err", err)
	}
	a.statuses.forget(pod.UID)
	a.puller.forgetPod(pod.UID)
	if removed {
		return nil
	}
	return a.deletePodObject(ctx, pod)
}

func (a *Agent) removeRuntimePod(ctx context.Context, rp *runtimePod) error {
	var errs []error
	for _, c := range rp.containers {
		if err := a.cfg.Runtime.RemoveContainer(ctx, c.Id); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("remove container %s: %w", c.Id, err))
		}
	}
	for _, s := range rp.sandboxes {
		if s.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			if err := a.cfg.Runtime.StopPodSandbox(ctx, s.Id); err != nil && !isNotFound(err) {
				errs = append(errs, fmt.Errorf("stop sandbox %s: %w", s.Id, err))
				continue
			}
		}
		if err := a.cfg.Runtime.RemovePodSandbox(ctx, s.Id); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("remove sandbox %s: %w", s.Id, err))
		}
	}
	return errors.Join(errs...)
}

// deletePodObject finishes a graceful deletion: grace 0 with a UID precondition, so a new
// pod of the same name is never deleted by mistake.
func (a *Agent) deletePodObject(ctx context.Context, pod *v1.Pod) error {
	zero := int64(0)
	err := a.cfg.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero,
		Preconditions:      metav1.NewUIDPreconditions(string(pod.UID)),
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	klog.FromContext(ctx).V(2).Info("Pod deleted", "pod", klog.KObj(pod))
	return nil
}

// describeOrphan fills in name and namespace of an orphan stub from the runtime's labels.
func describeOrphan(pod *v1.Pod, rp *runtimePod) *v1.Pod {
	if pod.Name != "" || rp.name == "" {
		return pod
	}
	pod = pod.DeepCopy()
	pod.Name, pod.Namespace = rp.name, rp.namespace
	return pod
}

// orphanGracePeriod is the grace period recorded on the pod's containers when it ran.
func orphanGracePeriod(rp *runtimePod, fallback int64) int64 {
	for _, c := range rp.containers {
		if g, err := strconv.ParseInt(c.GetAnnotations()[annotationGracePeriod], 10, 64); err == nil {
			return g
		}
	}
	return fallback
}
