package controller

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

// podDeletionCostAnnotation lets users rank which pods a scale-down removes first.
const podDeletionCostAnnotation = "controller.kubernetes.io/pod-deletion-cost"

// claimPods returns the active pods rs owns after adopting matching orphans and releasing
// owned pods that no longer match, like kube's ControllerRefManager.
func (c *replicaSetController) claimPods(ctx context.Context, rs *appsv1.ReplicaSet, selector labels.Selector,
	pods []*corev1.Pod) ([]*corev1.Pod, error) {
	var (
		owned    []*corev1.Pod
		errs     []error
		adoptErr error
		checked  bool
	)
	// canAdopt checks once per sync, against the apiserver rather than the cache, that rs
	// still exists and is not being deleted: adopting pods into a dying owner would have the
	// garbage collector delete them.
	canAdopt := func() error {
		if !checked {
			checked = true
			adoptErr = c.checkAdoptable(ctx, rs)
		}
		return adoptErr
	}
	for _, pod := range pods {
		matches := selector.Matches(labels.Set(pod.Labels))
		if ref := metav1.GetControllerOf(pod); ref != nil {
			if ref.UID != rs.UID {
				continue // someone else's
			}
			if matches {
				owned = append(owned, pod)
				continue
			}
			if rs.DeletionTimestamp != nil {
				continue // the owner is going away; the garbage collector decides
			}
			if err := c.releasePod(ctx, rs, pod); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if !matches || rs.DeletionTimestamp != nil || pod.DeletionTimestamp != nil {
			continue
		}
		if err := canAdopt(); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := c.adoptPod(ctx, rs, pod); err != nil {
			errs = append(errs, err)
			continue
		}
		owned = append(owned, pod)
	}
	return owned, errors.Join(errs...)
}

func (c *replicaSetController) checkAdoptable(ctx context.Context, rs *appsv1.ReplicaSet) error {
	fresh, err := c.client.AppsV1().ReplicaSets(rs.Namespace).Get(ctx, rs.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("check replicaset %s before adopting: %w", rsKey(rs), err)
	}
	if fresh.UID != rs.UID {
		return fmt.Errorf("replicaset %s was recreated (uid %s, cached %s), not adopting", rsKey(rs), fresh.UID, rs.UID)
	}
	if fresh.DeletionTimestamp != nil {
		return fmt.Errorf("replicaset %s is being deleted, not adopting", rsKey(rs))
	}
	return nil
}

// adoptPod adds rs as the pod's controller. Like kube's ControllerRefManager it sends a
// strategic merge patch keyed by owner uid, guarded by the pod's uid: it needs no
// resourceVersion, so the agent's status updates do not make it conflict.
func (c *replicaSetController) adoptPod(ctx context.Context, rs *appsv1.ReplicaSet, pod *corev1.Pod) error {
	patch, err := addOwnerPatch(pod.UID, *metav1.NewControllerRef(rs, replicaSetKind))
	if err != nil {
		return err
	}
	if err := c.patchPod(ctx, pod, patch); err != nil {
		if apierrors.IsNotFound(err) {
			return nil // gone already: nothing to own
		}
		return fmt.Errorf("adopt pod %s: %w", podKey(pod), err)
	}
	klog.FromContext(ctx).V(2).Info("Adopted pod", "pod", klog.KObj(pod))
	return nil
}

// releasePod removes rs from the pod's owners because its labels stopped matching.
func (c *replicaSetController) releasePod(ctx context.Context, rs *appsv1.ReplicaSet, pod *corev1.Pod) error {
	patch, err := removeOwnersPatch(pod.UID, rs.UID)
	if err != nil {
		return err
	}
	if err := c.patchPod(ctx, pod, patch); err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsInvalid(err) {
			// Gone, or being deleted (the apiserver refuses changes then): nothing to release.
			return nil
		}
		return fmt.Errorf("release pod %s: %w", podKey(pod), err)
	}
	klog.FromContext(ctx).V(2).Info("Released pod", "pod", klog.KObj(pod))
	return nil
}

func (c *replicaSetController) patchPod(ctx context.Context, pod *corev1.Pod, patch []byte) error {
	_, err := c.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch,
		metav1.PatchOptions{})
	return err
}

// manageReplicas creates or deletes pods so that len(owned) moves towards spec.replicas.
func (c *replicaSetController) manageReplicas(ctx context.Context, owned []*corev1.Pod, rs *appsv1.ReplicaSet) error {
	diff := len(owned) - int(replicas(rs))
	switch {
	case diff < 0:
		return c.createPods(ctx, rs, min(-diff, burstReplicas))
	case diff > 0:
		return c.deletePods(ctx, rs, podsToDelete(owned, min(diff, burstReplicas)))
	}
	return nil
}

func (c *replicaSetController) createPods(ctx context.Context, rs *appsv1.ReplicaSet, n int) error {
	key := rsKey(rs)
	klog.FromContext(ctx).V(2).Info("Too few replicas", "need", replicas(rs), "creating", n)
	// Expect all creations first: the informer may deliver a new pod before Create returns.
	c.exp.expectCreations(key, n)
	created, err := slowStartBatch(n, 1, func() error { return c.createPod(ctx, rs) })
	for range n - created {
		// Skipped or failed creations never show up in the informer.
		c.exp.creationObserved(key)
	}
	return err
}

func (c *replicaSetController) createPod(ctx context.Context, rs *appsv1.ReplicaSet) error {
	pod := podFromTemplate(rs)
	created, err := c.client.CoreV1().Pods(rs.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		// A terminating namespace (kube) or a deleted one (skiff deletes namespaces at
		// once; a create can only be NotFound for its namespace) is no news worth an event:
		// the namespace's cleanup removes this ReplicaSet soon.
		if !apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) && !apierrors.IsNotFound(err) {
			c.recorder.Eventf(rs, corev1.EventTypeWarning, reasonFailedCreate, "Error creating: %v", err)
		}
		return fmt.Errorf("create pod for replicaset %s: %w", rsKey(rs), err)
	}
	klog.FromContext(ctx).V(2).Info("Created pod", "pod", klog.KObj(created))
	c.recorder.Eventf(rs, corev1.EventTypeNormal, reasonSuccessfulCreate, "Created pod: %v", created.Name)
	return nil
}

func (c *replicaSetController) deletePods(ctx context.Context, rs *appsv1.ReplicaSet, victims []*corev1.Pod) error {
	key := rsKey(rs)
	keys := make([]string, 0, len(victims))
	for _, pod := range victims {
		keys = append(keys, podKey(pod))
	}
	klog.FromContext(ctx).V(2).Info("Too many replicas", "need", replicas(rs), "deleting", len(victims))
	c.exp.expectDeletions(key, keys)

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, pod := range victims {
		wg.Go(func() {
			if err := c.deletePodOf(ctx, rs, pod); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (c *replicaSetController) deletePodOf(ctx context.Context, rs *appsv1.ReplicaSet, pod *corev1.Pod) error {
	err := c.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{})
	if err == nil {
		klog.FromContext(ctx).V(2).Info("Deleted pod", "pod", klog.KObj(pod))
		c.recorder.Eventf(rs, corev1.EventTypeNormal, reasonSuccessfulDelete, "Deleted pod: %v", pod.Name)
		return nil
	}
	// This deletion will never be observed: stop waiting for it.
	c.exp.deletionObserved(rsKey(rs), podKey(pod))
	if apierrors.IsNotFound(err) {
		return nil
	}
	c.recorder.Eventf(rs, corev1.EventTypeWarning, reasonFailedDelete, "Error deleting: %v", err)
	return fmt.Errorf("delete pod %s: %w", podKey(pod), err)
}

// slowStartBatch calls fn count times in batches that double in size (initial, 2*initial,
// ...) while every call succeeds, so a failing create (quota, bad template) fails once
// instead of hundreds of times. It returns the number of successful calls.
func slowStartBatch(count, initial int, fn func() error) (int, error) {
	remaining, successes := count, 0
	for batch := min(remaining, initial); batch > 0; batch = min(2*batch, remaining) {
		errCh := make(chan error, batch)
		var wg sync.WaitGroup
		for range batch {
			wg.Go(func() {
				if err := fn(); err != nil {
					errCh <- err
				}
			})
		}
		wg.Wait()
		close(errCh)
		successes += batch - len(errCh)
		if len(errCh) > 0 {
			var errs []error
			for err := range errCh {
				errs = append(errs, err)
			}
			return successes, errors.Join(errs...)
		}
		remaining -= batch
	}
	return successes, nil
}

// podFromTemplate builds a pod for rs: generateName "<rs>-", the template's labels,
// annotations, finalizers and spec, and rs as its controller.
func podFromTemplate(rs *appsv1.ReplicaSet) *corev1.Pod {
	tmpl := rs.Spec.Template.DeepCopy()
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    rs.Name + "-",
			Namespace:       rs.Namespace,
			Labels:          tmpl.Labels,
			Annotations:     tmpl.Annotations,
			Finalizers:      tmpl.Finalizers,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(rs, replicaSetKind)},
		},
		Spec: tmpl.Spec,
	}
}

// podsToDelete picks the n pods a scale-down should remove first.
func podsToDelete(pods []*corev1.Pod, n int) []*corev1.Pod {
	ranked := append([]*corev1.Pod(nil), pods...)
	sort.SliceStable(ranked, func(i, j int) bool { return deleteBefore(ranked[i], ranked[j]) })
	return ranked[:n]
}

// deleteBefore reports whether a should be deleted before b, a simplified form of kube's
// ActivePods ordering: unscheduled before scheduled, pending before unknown before running,
// not ready before ready, lower deletion cost first, ready for less time before longer,
// more restarts before fewer, newer before older.
func deleteBefore(a, b *corev1.Pod) bool {
	if (a.Spec.NodeName == "") != (b.Spec.NodeName == "") {
		return a.Spec.NodeName == ""
	}
	if pa, pb := phaseRank(a.Status.Phase), phaseRank(b.Status.Phase); pa != pb {
		return pa < pb
	}
	if podReady(a) != podReady(b) {
		return !podReady(a)
	}
	if ca, cb := deletionCost(a), deletionCost(b); ca != cb {
		return ca < cb
	}
	if podReady(a) {
		ta, tb := readySince(a), readySince(b)
		if !ta.Equal(&tb) {
			return tb.Before(&ta)
		}
	}
	if ra, rb := maxRestarts(a), maxRestarts(b); ra != rb {
		return ra > rb
	}
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return b.CreationTimestamp.Before(&a.CreationTimestamp)
	}
	return false
}

func phaseRank(phase corev1.PodPhase) int {
	switch phase {
	case corev1.PodPending:
		return 0
	case corev1.PodUnknown:
		return 1
	case corev1.PodRunning:
		return 2
	}
	return 3
}

func deletionCost(pod *corev1.Pod) int64 {
	v, ok := pod.Annotations[podDeletionCostAnnotation]
	if !ok {
		return 0
	}
	cost, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0 // validation rejects bad values; treat leftovers as neutral
	}
	return cost
}

func maxRestarts(pod *corev1.Pod) int32 {
	var n int32
	for _, cs := range pod.Status.ContainerStatuses {
		n = max(n, cs.RestartCount)
	}
	return n
}

func readyCondition(pod *corev1.Pod) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == corev1.PodReady {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}

func podReady(pod *corev1.Pod) bool {
	cond := readyCondition(pod)
	return cond != nil && cond.Status == corev1.ConditionTrue
}

func readySince(pod *corev1.Pod) metav1.Time {
	if cond := readyCondition(pod); cond != nil {
		return cond.LastTransitionTime
	}
	return metav1.Time{}
}

// filterActivePods drops pods that finished or are being deleted: they do not count as
// replicas.
func filterActivePods(pods []*corev1.Pod) []*corev1.Pod {
	var out []*corev1.Pod
	for _, pod := range pods {
		if pod.DeletionTimestamp == nil && !podTerminal(pod) {
			out = append(out, pod)
		}
	}
	return out
}

// ownedTerminating counts rs's pods that are shutting down but not finished yet.
func ownedTerminating(rs *appsv1.ReplicaSet, pods []*corev1.Pod) int32 {
	var n int32
	for _, pod := range pods {
		ref := metav1.GetControllerOf(pod)
		if pod.DeletionTimestamp != nil && !podTerminal(pod) && ref != nil && ref.UID == rs.UID {
			n++
		}
	}
	return n
}

func podTerminal(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

func replicas(rs *appsv1.ReplicaSet) int32 {
	if rs.Spec.Replicas == nil {
		return 1 // the API default
	}
	return *rs.Spec.Replicas
}
