package scheduler

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// Taints kube's node lifecycle controller puts on nodes; the scheduler derives them from
// the Ready condition itself since skiff may run without that controller.
const (
	taintNotReady      = "node.kubernetes.io/not-ready"
	taintUnreachable   = "node.kubernetes.io/unreachable"
	taintUnschedulable = "node.kubernetes.io/unschedulable"
)

// Reasons, worded as kube's filter plugins word them.
const (
	reasonUnschedulable = "node(s) were unschedulable"
	reasonAffinity      = "node(s) didn't match Pod's node affinity/selector"
	reasonPorts         = "node(s) didn't have free ports for the requested pod ports"
	reasonTooManyPods   = "Too many pods"
)

// podInfo is what filtering and scoring need of a pod, computed once per attempt rather
// than once per node.
type podInfo struct {
	pod        *corev1.Pod
	requests   resources
	nonZeroCPU int64
	nonZeroMem int64
	ports      []hostPort
}

func newPodInfo(pod *corev1.Pod) *podInfo {
	cpu, mem := nonZeroRequests(pod)
	return &podInfo{pod: pod, requests: podRequests(pod), nonZeroCPU: cpu, nonZeroMem: mem, ports: podHostPorts(pod)}
}

// filter returns why the pod cannot run on ni, or nothing if it can. Like kube, it stops
// at the first failing check.
func filter(pi *podInfo, ni *nodeInfo) []string {
	pod, node := pi.pod, ni.node
	if node.Spec.Unschedulable && !tolerated(pod.Spec.Tolerations,
		&corev1.Taint{Key: taintUnschedulable, Effect: corev1.TaintEffectNoSchedule}) {
		return []string{reasonUnschedulable}
	}
	if taint := untoleratedTaint(pod, node); taint != nil {
		return []string{fmt.Sprintf("node(s) had untolerated taint {%s: %s}", taint.Key, taint.Value)}
	}
	if !matchesNodeSelector(pod, node) {
		return []string{reasonAffinity}
	}
	if !portsFree(pi.ports, ni) {
		return []string{reasonPorts}
	}
	return insufficient(pi, ni)
}

// effectiveTaints are the node's taints plus the one its Ready condition implies.
func effectiveTaints(node *corev1.Node) []corev1.Taint {
	implied := taintNotReady
	for _, c := range node.Status.Conditions {
		if c.Type != corev1.NodeReady {
			continue
		}
		switch c.Status {
		case corev1.ConditionTrue:
			implied = ""
		case corev1.ConditionUnknown:
			implied = taintUnreachable
		}
	}
	taints := node.Spec.Taints
	if implied == "" {
		return taints
	}
	for _, t := range taints {
		if t.Key == implied && t.Effect == corev1.TaintEffectNoSchedule {
			return taints
		}
	}
	return append(append([]corev1.Taint(nil), taints...),
		corev1.Taint{Key: implied, Effect: corev1.TaintEffectNoSchedule})
}

func untoleratedTaint(pod *corev1.Pod, node *corev1.Node) *corev1.Taint {
	for _, t := range effectiveTaints(node) {
		if t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectNoExecute {
			continue // PreferNoSchedule only matters for scoring
		}
		if !tolerated(pod.Spec.Tolerations, &t) {
			return &t
		}
	}
	return nil
}

func tolerated(tolerations []corev1.Toleration, taint *corev1.Taint) bool {
	for i := range tolerations {
		if tolerates(&tolerations[i], taint) {
			return true
		}
	}
	return false
}

// tolerates implements the toleration matching rules of the core API.
func tolerates(tol *corev1.Toleration, taint *corev1.Taint) bool {
	if tol.Effect != "" && tol.Effect != taint.Effect {
		return false
	}
	if tol.Key != "" && tol.Key != taint.Key {
		return false
	}
	switch tol.Operator {
	case corev1.TolerationOpExists:
		return true
	case corev1.TolerationOpEqual, "":
		return tol.Key != "" && tol.Value == taint.Value
	}
	return false
}

// matchesNodeSelector checks spec.nodeSelector and the required node affinity.
func matchesNodeSelector(pod *corev1.Pod, node *corev1.Node) bool {
	if len(pod.Spec.NodeSelector) > 0 &&
		!labels.SelectorFromSet(pod.Spec.NodeSelector).Matches(labels.Set(node.Labels)) {
		return false
	}
	aff := pod.Spec.Affinity
	if aff == nil || aff.NodeAffinity == nil || aff.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return true
	}
	// Terms are ORed; the requirements inside a term are ANDed.
	for _, term := range aff.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		if termMatches(&term, node) {
			return true
		}
	}
	return false
}

func termMatches(term *corev1.NodeSelectorTerm, node *corev1.Node) bool {
	if len(term.MatchExpressions) == 0 && len(term.MatchFields) == 0 {
		return false // an empty term matches nothing
	}
	for _, req := range term.MatchExpressions {
		if !requirementMatches(req, labels.Set(node.Labels)) {
			return false
		}
	}
	for _, req := range term.MatchFields {
		if req.Key != "metadata.name" || !requirementMatches(req, labels.Set{"metadata.name": node.Name}) {
			return false
		}
	}
	return true
}

func requirementMatches(req corev1.NodeSelectorRequirement, set labels.Set) bool {
	var op selection.Operator
	switch req.Operator {
	case corev1.NodeSelectorOpIn:
		op = selection.In
	case corev1.NodeSelectorOpNotIn:
		op = selection.NotIn
	case corev1.NodeSelectorOpExists:
		op = selection.Exists
	case corev1.NodeSelectorOpDoesNotExist:
		op = selection.DoesNotExist
	case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
		return compareInt(req, set)
	default:
		return false
	}
	r, err := labels.NewRequirement(req.Key, op, req.Values)
	return err == nil && r.Matches(set)
}

func compareInt(req corev1.NodeSelectorRequirement, set labels.Set) bool {
	if len(req.Values) != 1 || !set.Has(req.Key) {
		return false
	}
	want, err1 := strconv.ParseInt(req.Values[0], 10, 64)
	have, err2 := strconv.ParseInt(set.Get(req.Key), 10, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	if req.Operator == corev1.NodeSelectorOpGt {
		return have > want
	}
	return have < want
}

func portsFree(ports []hostPort, ni *nodeInfo) bool {
	wildcard := "0.0.0.0"
	for _, want := range ports {
		for used := range ni.ports {
			if used.protocol != want.protocol || used.port != want.port {
				continue
			}
			if used.ip == want.ip || used.ip == wildcard || want.ip == wildcard {
				return false
			}
		}
	}
	return true
}

// insufficient lists the resources the node lacks for the pod, as "Insufficient cpu" etc.
func insufficient(pi *podInfo, ni *nodeInfo) []string {
	alloc := ni.allocatable
	var reasons []string
	if int64(ni.pods+1) > alloc[corev1.ResourcePods] {
		reasons = append(reasons, reasonTooManyPods)
	}
	var names []string
	for name, v := range pi.requests {
		if v > 0 && name != corev1.ResourcePods && alloc[name]-ni.requested[name] < v {
			names = append(names, string(name))
		}
	}
	if len(names) > 1 {
		sort.Strings(names)
	}
	for _, name := range names {
		reasons = append(reasons, "Insufficient "+name)
	}
	return reasons
}

// leastAllocatedScore is kube's LeastAllocated score (0-100) over cpu and memory with
// equal weights: the share of each that stays free once the pod is placed.
func leastAllocatedScore(pi *podInfo, ni *nodeInfo) int64 {
	return (freeShare(ni.nonZeroCPU+pi.nonZeroCPU, ni.allocatable[corev1.ResourceCPU]) +
		freeShare(ni.nonZeroMem+pi.nonZeroMem, ni.allocatable[corev1.ResourceMemory])) / 2
}

func freeShare(requested, capacity int64) int64 {
	if capacity == 0 || requested > capacity {
		return 0
	}
	return (capacity - requested) * 100 / capacity
}

// Kube's DefaultPreemption wording for the nodes where it finds nothing to do.
const (
	preemptionNotHelpful = "Preemption is not helpful for scheduling"
	preemptionNoVictims  = "No preemption victims found for incoming pod"
	preemptionNever      = "not eligible due to preemptionPolicy=Never."
)

// fitError says why a pod fits on none of the nodes, in kube's wording: the filter
// reasons grouped by count and sorted, then what preemption made of it.
type fitError struct {
	numNodes int
	reasons  map[string]int // reason -> number of nodes
	// preemption counts the nodes by preemptionNotHelpful/preemptionNoVictims.
	preemption map[string]int
	// preemptNever: the pod's preemptionPolicy is Never.
	preemptNever bool
}

func (e *fitError) Error() string {
	if e.numNodes == 0 {
		return "no nodes available to schedule pods"
	}
	msg := fmt.Sprintf("0/%d nodes are available: %s.", e.numNodes, histogram(e.reasons))
	switch {
	case e.preemptNever:
		msg += " preemption: " + preemptionNever
	case len(e.preemption) > 0:
		msg += fmt.Sprintf(" preemption: 0/%d nodes are available: %s.", e.numNodes, histogram(e.preemption))
	}
	return msg
}

// histogram is "1 Insufficient cpu, 2 node(s) ...": kube sorts the "count reason"
// strings themselves.
func histogram(counts map[string]int) string {
	parts := make([]string, 0, len(counts))
	for reason, n := range counts {
		parts = append(parts, fmt.Sprintf("%d %s", n, reason))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// preemptionVerdict is what kube's preemption would say of a node the pod does not fit:
// evicting pods cannot undo a cordon, a taint or an affinity mismatch, nor make room
// for a request above the node's allocatable (kube's unresolvable failures). skiff never
// evicts, so where kube could have looked for victims it reports finding none.
func preemptionVerdict(pi *podInfo, ni *nodeInfo, reasons []string) string {
	switch r := reasons[0]; {
	case r == reasonUnschedulable, r == reasonAffinity, strings.HasPrefix(r, "node(s) had untolerated taint"):
		return preemptionNotHelpful
	}
	for name, v := range pi.requests {
		if name != corev1.ResourcePods && v > ni.allocatable[name] {
			return preemptionNotHelpful
		}
	}
	return preemptionNoVictims
}
