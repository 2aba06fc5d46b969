package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	coordlisters "k8s.io/client-go/listers/coordination/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
)

// Node lifecycle timing, kube-controller-manager's defaults (--node-monitor-period,
// --node-monitor-grace-period).
const (
	nodeMonitorPeriod      = 5 * time.Second
	nodeMonitorGracePeriod = 50 * time.Second
)

// nodeLeaseNamespace holds the Leases agents renew as their heartbeat.
const nodeLeaseNamespace = corev1.NamespaceNodeLease

// nodeLifecycle notices nodes whose agent stopped heartbeating (neither the Lease nor
// the node status moved for the grace period): it sets their conditions to Unknown, taints
// them node.kubernetes.io/unreachable (NoSchedule and NoExecute), marks their pods not
// ready, and evicts the pods that do not tolerate the NoExecute taint, once their
// tolerationSeconds (300 s by default, added by the apiserver) have passed. When the node
// reports Ready again, the taints go. It is a small form of kube's node lifecycle and
// taint eviction controllers.
type nodeLifecycle struct {
	client   kubernetes.Interface
	nodes    corelisters.NodeLister
	leases   coordlisters.LeaseLister
	pods     corelisters.PodLister
	synced   []cache.InformerSynced
	recorder record.EventRecorder
	now      func() time.Time
	grace    time.Duration
	// probes remember when each node was last seen alive, by this controller's clock, so
	// clock skew between nodes and the control plane does not matter. Only the monitor
	// goroutine touches it.
	probes map[string]*nodeProbe
}

type nodeProbe struct {
	heartbeat metav1.Time // Ready condition's lastHeartbeatTime
	renew     metav1.MicroTime
	seen      time.Time
}

func newNodeLifecycle(client kubernetes.Interface, factory informers.SharedInformerFactory,
	recorder record.EventRecorder) *nodeLifecycle {
	nodes, leases, pods := factory.Core().V1().Nodes(), factory.Coordination().V1().Leases(), factory.Core().V1().Pods()
	return &nodeLifecycle{
		client:   client,
		nodes:    nodes.Lister(),
		leases:   leases.Lister(),
		pods:     pods.Lister(),
		synced:   []cache.InformerSynced{nodes.Informer().HasSynced, leases.Informer().HasSynced, pods.Informer().HasSynced},
		recorder: recorder,
		now:      time.Now,
		grace:    nodeMonitorGracePeriod,
		probes:   map[string]*nodeProbe{},
	}
}

func (c *nodeLifecycle) run(ctx context.Context) {
	runPeriodic(ctx, "node lifecycle controller", c.synced, nodeMonitorPeriod, c.monitor)
}

// monitor runs one pass over all nodes.
func (c *nodeLifecycle) monitor(ctx context.Context) error {
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return err
	}
	now := c.now()
	known := map[string]bool{}
	var errs []error
	for _, node := range nodes {
		known[node.Name] = true
		if err := c.monitorNode(ctx, node, now); err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", node.Name, err))
		}
	}
	for name := range c.probes {
		if !known[name] {
			delete(c.probes, name)
		}
	}
	return errors.Join(errs...)
}

func (c *nodeLifecycle) monitorNode(ctx context.Context, node *corev1.Node, now time.Time) error {
	ready := nodeCondition(node, corev1.NodeReady)
	if c.alive(node, ready, now) {
		if ready != nil && ready.Status == corev1.ConditionTrue && hasUnreachableTaint(node) {
			return c.setUnreachableTaints(ctx, node, false, now)
		}
		return c.evict(ctx, node, now)
	}
	if ready == nil || ready.Status != corev1.ConditionUnknown {
		klog.FromContext(ctx).Info("Node stopped heartbeating", "node", node.Name, "gracePeriod", c.grace)
		if err := c.markUnknown(ctx, node, now); err != nil {
			return err
		}
		c.recorder.Eventf(&corev1.ObjectReference{Kind: "Node", Name: node.Name, UID: node.UID},
			corev1.EventTypeNormal, "NodeNotReady", "Node %s status is now: NodeNotReady", node.Name)
	}
	if !hasUnreachableTaint(node) {
		if err := c.setUnreachableTaints(ctx, node, true, now); err != nil {
			return err
		}
	}
	return errors.Join(c.markPodsNotReady(ctx, node.Name, now), c.evict(ctx, node, now))
}

// alive reports whether the node's heartbeat (Lease renewal or status heartbeat) moved
// within the grace period.
func (c *nodeLifecycle) alive(node *corev1.Node, ready *corev1.NodeCondition, now time.Time) bool {
	var heartbeat metav1.Time
	if ready != nil {
		heartbeat = ready.LastHeartbeatTime
	}
	var renew metav1.MicroTime
	if lease, err := c.leases.Leases(nodeLeaseNamespace).Get(node.Name); err == nil && lease.Spec.RenewTime != nil {
		renew = *lease.Spec.RenewTime
	}
	p, ok := c.probes[node.Name]
	if !ok {
		// First sight (or a controller restart): give the node a full grace period.
		c.probes[node.Name] = &nodeProbe{heartbeat: heartbeat, renew: renew, seen: now}
		return true
	}
	if !p.heartbeat.Equal(&heartbeat) || !p.renew.Equal(&renew) {
		p.heartbeat, p.renew, p.seen = heartbeat, renew, now
	}
	return now.Sub(p.seen) <= c.grace
}

// markUnknown sets the node's conditions to Unknown, as kube does when the kubelet stops
// posting status.
func (c *nodeLifecycle) markUnknown(ctx context.Context, node *corev1.Node, now time.Time) error {
	updated := node.DeepCopy()
	found := false
	for i := range updated.Status.Conditions {
		cond := &updated.Status.Conditions[i]
		found = found || cond.Type == corev1.NodeReady
		if cond.Status == corev1.ConditionUnknown {
			continue
		}
		cond.Status = corev1.ConditionUnknown
		cond.Reason = "NodeStatusUnknown"
		cond.Message = "Kubelet stopped posting node status."
		cond.LastTransitionTime = metav1.NewTime(now)
	}
	if !found {
		updated.Status.Conditions = append(updated.Status.Conditions, corev1.NodeCondition{
			Type: corev1.NodeReady, Status: corev1.ConditionUnknown,
			Reason: "NodeStatusNeverUpdated", Message: "Kubelet never posted node status.",
			LastHeartbeatTime: node.CreationTimestamp, LastTransitionTime: metav1.NewTime(now),
		})
	}
	_, err := c.client.CoreV1().Nodes().UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("mark node unknown: %w", err)
	}
	return nil
}

func hasUnreachableTaint(node *corev1.Node) bool {
	for _, t := range node.Spec.Taints {
		if t.Key == corev1.TaintNodeUnreachable {
			return true
		}
	}
	return false
}

// setUnreachableTaints adds or removes the unreachable NoSchedule and NoExecute taints.
// It reads the node live so as not to overwrite spec changes the cache has not seen.
func (c *nodeLifecycle) setUnreachableTaints(ctx context.Context, node *corev1.Node, add bool, now time.Time) error {
	live, err := c.client.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get node: %w", err)
	}
	var taints []corev1.Taint
	for _, t := range live.Spec.Taints {
		if t.Key != corev1.TaintNodeUnreachable {
			taints = append(taints, t)
		}
	}
	if add {
		added := metav1.NewTime(now)
		taints = append(taints,
			corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoSchedule},
			corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute, TimeAdded: &added})
	}
	live.Spec.Taints = taints
	if _, err := c.client.CoreV1().Nodes().Update(ctx, live, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update unreachable taints: %w", err)
	}
	klog.FromContext(ctx).V(2).Info("Updated unreachable taints", "node", node.Name, "tainted", add)
	return nil
}

// markPodsNotReady sets Ready=False on the pods of an unresponsive node, so they drop out
// of readiness counts (ReplicaSet status, endpoints) while nobody can vouch for them.
func (c *nodeLifecycle) markPodsNotReady(ctx context.Context, nodeName string, now time.Time) error {
	pods, err := c.pods.List(labels.Everything())
	if err != nil {
		return err
	}
	var errs []error
	for _, pod := range pods {
		if pod.Spec.NodeName != nodeName || podTerminal(pod) || !podReady(pod) {
			continue
		}
		updated := pod.DeepCopy()
		cond := readyCondition(updated)
		cond.Status = corev1.ConditionFalse
		cond.Reason = "NodeNotReady"
		cond.LastTransitionTime = metav1.NewTime(now)
		_, err := c.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, fmt.Errorf("mark pod %s not ready: %w", podKey(pod), err))
		}
	}
	return errors.Join(errs...)
}

// evict deletes the pods on node that do not tolerate its NoExecute taints, or whose
// tolerationSeconds have run out, like kube's taint eviction controller.
func (c *nodeLifecycle) evict(ctx context.Context, node *corev1.Node, now time.Time) error {
	var noExecute []corev1.Taint
	for _, t := range node.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoExecute {
			noExecute = append(noExecute, t)
		}
	}
	if len(noExecute) == 0 {
		return nil
	}
	pods, err := c.pods.List(labels.Everything())
	if err != nil {
		return err
	}
	var errs []error
	for _, pod := range pods {
		if pod.Spec.NodeName != node.Name || pod.DeletionTimestamp != nil || podTerminal(pod) {
			continue
		}
		if !evictionDue(klog.FromContext(ctx), pod, noExecute, now) {
			continue
		}
		klog.FromContext(ctx).Info("Evicting pod from tainted node", "pod", klog.KObj(pod), "node", node.Name)
		c.recorder.Eventf(pod, corev1.EventTypeNormal, "TaintManagerEviction", "Marking for deletion Pod %s", podKey(pod))
		uid := pod.UID
		err := c.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &uid},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, fmt.Errorf("evict pod %s: %w", podKey(pod), err))
		}
	}
	return errors.Join(errs...)
}

// evictionDue reports whether pod must leave a node with the given NoExecute taints: some
// taint is not tolerated, or tolerated only for tolerationSeconds that have passed.
func evictionDue(logger klog.Logger, pod *corev1.Pod, taints []corev1.Taint, now time.Time) bool {
	for i := range taints {
		taint := &taints[i]
		tol := matchingToleration(logger, pod.Spec.Tolerations, taint)
		if tol == nil {
			return true
		}
		if tol.TolerationSeconds == nil {
			continue // tolerated for ever
		}
		since := now
		if taint.TimeAdded != nil {
			since = taint.TimeAdded.Time
		}
		if !now.Before(since.Add(time.Duration(*tol.TolerationSeconds) * time.Second)) {
			return true
		}
	}
	return false
}

func matchingToleration(logger klog.Logger, tolerations []corev1.Toleration, taint *corev1.Taint) *corev1.Toleration {
	for i := range tolerations {
		if tolerations[i].ToleratesTaint(logger, taint, false) {
			return &tolerations[i]
		}
	}
	return nil
}

func nodeCondition(node *corev1.Node, t corev1.NodeConditionType) *corev1.NodeCondition {
	for i := range node.Status.Conditions {
		if node.Status.Conditions[i].Type == t {
			return &node.Status.Conditions[i]
		}
	}
	return nil
}
