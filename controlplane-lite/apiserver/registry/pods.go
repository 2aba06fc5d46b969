package registry

import (
	"context"
	"fmt"
	"math"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/diff"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func podGR() schema.GroupResource { return schema.GroupResource{Resource: "pods"} }

func podBindingGR() schema.GroupResource { return schema.GroupResource{Resource: "pods/binding"} }

func bindingGK() schema.GroupKind { return schema.GroupKind{Kind: "Binding"} }

const (
	// defaultTolerationSeconds is how long pods stay on a not-ready or unreachable node
	// before eviction, as added by the DefaultTolerationSeconds admission plugin.
	defaultTolerationSeconds int64 = 300
	// Priorities of the built-in priority classes; any other class name gets 0 here.
	systemClusterCritical int32 = 2000000000
	systemNodeCritical    int32 = 2000001000
)

// updatablePodSpecFields is kube-apiserver's list, quoted verbatim in its error.
const updatablePodSpecFields = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`," +
	"`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"

type podStrategy struct{ now clock }

// Default applies the PodSpec defaults, the pod-only ones (enableServiceLinks, requests
// from limits) and what kube's admission plugins add on create: priority and
// preemptionPolicy (Priority) and the not-ready/unreachable tolerations
// (DefaultTolerationSeconds). Running it again on an update changes nothing.
func (podStrategy) Default(obj runtime.Object) {
	pod := obj.(*corev1.Pod)
	// A negative grace period would mean "kill at once" to some kubelets; kube makes it
	// the shortest real one.
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil && *g < 0 {
		pod.Spec.TerminationGracePeriodSeconds = ptrTo[int64](1)
	}
	if pod.Spec.HostNetwork {
		defaultHostNetworkPorts(&pod.Spec)
	}
	defaultPodSpec(&pod.Spec)
	defaultPodIPs(&pod.Status)
	if pod.Spec.EnableServiceLinks == nil {
		pod.Spec.EnableServiceLinks = ptrTo(corev1.DefaultEnableServiceLinks)
	}
	for i := range pod.Spec.InitContainers {
		defaultRequestsFromLimits(&pod.Spec.InitContainers[i].Resources)
	}
	for i := range pod.Spec.Containers {
		defaultRequestsFromLimits(&pod.Spec.Containers[i].Resources)
	}
	defaultPriority(&pod.Spec)
	pod.Spec.Tolerations = addDefaultTolerations(pod.Spec.Tolerations)
}

// defaultPodIPs keeps status.podIP and status.podIPs in step; when both are set and
// differ, podIP wins, for kubelets that only know the singular field.
func defaultPodIPs(status *corev1.PodStatus) {
	switch {
	case status.PodIP != "" && (len(status.PodIPs) == 0 || status.PodIPs[0].IP != status.PodIP):
		status.PodIPs = []corev1.PodIP{{IP: status.PodIP}}
	case status.PodIP == "" && len(status.PodIPs) > 0:
		status.PodIP = status.PodIPs[0].IP
	}
}

func defaultPriority(spec *corev1.PodSpec) {
	if spec.Priority == nil {
		var p int32
		switch spec.PriorityClassName {
		case "system-cluster-critical":
			p = systemClusterCritical
		case "system-node-critical":
			p = systemNodeCritical
		}
		spec.Priority = &p
	}
	if spec.PreemptionPolicy == nil {
		spec.PreemptionPolicy = ptrTo(corev1.PreemptLowerPriority)
	}
}

// addDefaultTolerations lets a pod ride out a short node outage (300s) before the node
// lifecycle controller evicts it, unless the pod already says how long it tolerates it.
func addDefaultTolerations(tolerations []corev1.Toleration) []corev1.Toleration {
	notReady, unreachable := false, false
	for _, t := range tolerations {
		if t.Effect != "" && t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		notReady = notReady || t.Key == "" || t.Key == corev1.TaintNodeNotReady
		unreachable = unreachable || t.Key == "" || t.Key == corev1.TaintNodeUnreachable
	}
	for _, add := range []struct {
		key     string
		present bool
	}{{corev1.TaintNodeNotReady, notReady}, {corev1.TaintNodeUnreachable, unreachable}} {
		if !add.present {
			tolerations = append(tolerations, corev1.Toleration{
				Key: add.key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute,
				TolerationSeconds: ptrTo(defaultTolerationSeconds),
			})
		}
	}
	return tolerations
}

// PrepareForCreate resets the status to what a new pod has: Pending, with its QoS class
// fixed for life.
func (s podStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	pod := obj.(*corev1.Pod)
	s.Default(pod) // the QoS class below depends on requests defaulted from limits
	clearDeletion(&pod.ObjectMeta)
	pod.Generation = 1
	pod.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: podQOSClass(pod)}
	if len(pod.Spec.SchedulingGates) > 0 {
		// The scheduler leaves gated pods alone; the condition tells users why.
		setPodCondition(&pod.Status, corev1.PodCondition{
			Type:    corev1.PodScheduled,
			Status:  corev1.ConditionFalse,
			Reason:  corev1.PodReasonSchedulingGated,
			Message: "Scheduling is blocked due to non-empty scheduling gates",
		}, metav1.NewTime(s.now()))
	}
}

func (s podStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	pod, oldPod := obj.(*corev1.Pod), old.(*corev1.Pod)
	s.Default(pod)
	pod.Status = oldPod.Status
	updateGeneration(&pod.ObjectMeta, &oldPod.ObjectMeta, !equality.Semantic.DeepEqual(pod.Spec, oldPod.Spec))
}

func (podStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	pod := obj.(*corev1.Pod)
	specPath := field.NewPath("spec")
	errs := validateObjectMeta(&pod.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	errs = append(errs, validatePodSpec(&pod.Spec, specPath)...)
	errs = append(errs, validateImagesTrimmed(&pod.Spec, specPath)...)
	if len(pod.Spec.EphemeralContainers) > 0 {
		// Debug containers join a running pod through pods/ephemeralcontainers only.
		errs = append(errs, field.Forbidden(specPath.Child("ephemeralContainers"), "cannot be set on create"))
	}
	if pod.Spec.NodeName != "" && len(pod.Spec.SchedulingGates) > 0 {
		errs = append(errs, field.Forbidden(specPath.Child("nodeName"), "cannot be set until all schedulingGates have been cleared"))
	}
	return errs
}

// ValidateUpdate allows only kube's mutable pod fields to change; everything else in
// the spec is fixed once the pod exists (the kubelet acts on it), and spec.nodeName is
// set only through pods/binding.
func (podStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	pod, oldPod := obj.(*corev1.Pod), old.(*corev1.Pod)
	errs := validateObjectMetaUpdate(&pod.ObjectMeta, &oldPod.ObjectMeta)
	errs = append(errs, validatePodSpec(&pod.Spec, field.NewPath("spec"))...)
	errs = append(errs, validateImagesTrimmed(&pod.Spec, field.NewPath("spec"))...)
	return append(errs, validatePodSpecUpdate(&pod.Spec, &oldPod.Spec, field.NewPath("spec"))...)
}

func validatePodSpecUpdate(spec, oldSpec *corev1.PodSpec, specPath *field.Path) field.ErrorList {
	if len(spec.Containers) != len(oldSpec.Containers) {
		return field.ErrorList{field.Forbidden(specPath.Child("containers"), "pod updates may not add or remove containers")}
	}
	if len(spec.InitContainers) != len(oldSpec.InitContainers) {
		return field.ErrorList{field.Forbidden(specPath.Child("initContainers"), "pod updates may not add or remove containers")}
	}
	if errs := validateActiveDeadlineUpdate(spec.ActiveDeadlineSeconds, oldSpec.ActiveDeadlineSeconds, specPath.Child("activeDeadlineSeconds")); len(errs) > 0 {
		return errs
	}
	errs := validateTolerationsAdded(spec.Tolerations, oldSpec.Tolerations, specPath.Child("tolerations"))
	errs = append(errs, validateSchedulingGatesDeleted(spec.SchedulingGates, oldSpec.SchedulingGates, specPath.Child("schedulingGates"))...)
	if equality.Semantic.DeepEqual(spec, oldSpec) {
		return errs
	}
	// Copy the mutable fields from old into a copy of new: any difference left is a
	// change to an immutable field.
	munged := spec.DeepCopy()
	for i := range munged.Containers {
		munged.Containers[i].Image = oldSpec.Containers[i].Image
	}
	for i := range munged.InitContainers {
		munged.InitContainers[i].Image = oldSpec.InitContainers[i].Image
	}
	munged.ActiveDeadlineSeconds = oldSpec.ActiveDeadlineSeconds
	munged.SchedulingGates = oldSpec.SchedulingGates
	munged.Tolerations = oldSpec.Tolerations
	if g := oldSpec.TerminationGracePeriodSeconds; g != nil && *g < 0 && munged.TerminationGracePeriodSeconds != nil && *munged.TerminationGracePeriodSeconds == 1 {
		munged.TerminationGracePeriodSeconds = g
	}
	if !equality.Semantic.DeepEqual(munged, oldSpec) {
		// kube shows a unified diff of the two specs as JSON.
		errs = append(errs, field.Forbidden(specPath, fmt.Sprintf("pod updates may not change fields other than %s\n%v",
			updatablePodSpecFields, diff.Diff(*oldSpec, *munged))))
	}
	return errs
}

func validateActiveDeadlineUpdate(newValue, oldValue *int64, fldPath *field.Path) field.ErrorList {
	switch {
	case newValue == nil && oldValue != nil:
		return field.ErrorList{field.Invalid(fldPath, newValue, "must not update from a positive integer to nil value")}
	case newValue == nil:
		return nil
	case *newValue < 0 || *newValue > math.MaxInt32:
		return field.ErrorList{field.Invalid(fldPath, *newValue, validation.InclusiveRangeError(0, math.MaxInt32))}
	case oldValue != nil && *oldValue < *newValue:
		return field.ErrorList{field.Invalid(fldPath, *newValue, "must be less than or equal to previous value")}
	}
	return nil
}

// validateTolerationsAdded: existing tolerations stay; only their tolerationSeconds may
// change.
func validateTolerationsAdded(tolerations, old []corev1.Toleration, fldPath *field.Path) field.ErrorList {
	for _, o := range old {
		found := false
		for _, n := range tolerations {
			o.TolerationSeconds = n.TolerationSeconds
			if equality.Semantic.DeepEqual(o, n) {
				found = true
				break
			}
		}
		if !found {
			return field.ErrorList{field.Forbidden(fldPath, "existing toleration can not be modified except its tolerationSeconds")}
		}
	}
	return nil
}

// validateSchedulingGatesDeleted: gates are only ever removed (by whoever lifts them).
func validateSchedulingGatesDeleted(gates, old []corev1.PodSchedulingGate, fldPath *field.Path) field.ErrorList {
	oldNames := make(map[string]bool, len(old))
	for _, g := range old {
		oldNames[g.Name] = true
	}
	var errs field.ErrorList
	for i, g := range gates {
		if !oldNames[g.Name] {
			errs = append(errs, field.Forbidden(fldPath.Index(i).Child("name"), fmt.Sprintf("only deletion is allowed, but found new scheduling gate '%s'", g.Name)))
		}
	}
	return errs
}

// GracefulDelete follows kube's podStrategy.CheckGracefulDelete: a pod bound to a node
// gets options.gracePeriodSeconds, else its spec.terminationGracePeriodSeconds, so the
// kubelet can stop it; unbound and finished pods go at once. It writes the period it
// decided on into options.GracePeriodSeconds (0 for an immediate delete).
func (podStrategy) GracefulDelete(_ context.Context, obj runtime.Object, options *metav1.DeleteOptions) bool {
	if options == nil {
		return false
	}
	pod := obj.(*corev1.Pod)
	var period int64
	switch {
	case options.GracePeriodSeconds != nil:
		period = *options.GracePeriodSeconds
	case pod.Spec.TerminationGracePeriodSeconds != nil:
		period = *pod.Spec.TerminationGracePeriodSeconds
	default:
		period = defaultTerminationGracePeriodSeconds
	}
	if pod.Spec.NodeName == "" || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		period = 0
	}
	if period < 0 {
		period = 1
	}
	options.GracePeriodSeconds = &period
	return period > 0
}

// podStatusStrategy serves pods/status, written by the kubelet (agent).
type podStatusStrategy struct{}

func (podStatusStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	pod, oldPod := obj.(*corev1.Pod), old.(*corev1.Pod)
	keepSystemMeta(&pod.ObjectMeta, &oldPod.ObjectMeta)
	pod.Spec = oldPod.Spec
	// Owner references are kept because old kubelets sent them back mangled and broke
	// garbage collection.
	pod.OwnerReferences = oldPod.OwnerReferences
	// The QoS class is fixed at creation; a status writer that dropped it gets it back.
	if pod.Status.QOSClass == "" {
		pod.Status.QOSClass = oldPod.Status.QOSClass
	}
	preserveObservedGeneration(&pod.Status, &oldPod.Status)
}

// preserveObservedGeneration keeps observedGeneration, of the status and of each
// condition, when a writer that does not know the fields leaves them out.
func preserveObservedGeneration(status, old *corev1.PodStatus) {
	if status.ObservedGeneration == 0 {
		status.ObservedGeneration = old.ObservedGeneration
	}
	// Per type a list: validation allows repeated condition types.
	oldGenerations := map[corev1.PodConditionType][]int64{}
	for _, c := range old.Conditions {
		oldGenerations[c.Type] = append(oldGenerations[c.Type], c.ObservedGeneration)
	}
	for i := range status.Conditions {
		c := &status.Conditions[i]
		var gen int64
		if gens := oldGenerations[c.Type]; len(gens) > 0 {
			gen, oldGenerations[c.Type] = gens[0], gens[1:]
		}
		if c.ObservedGeneration == 0 {
			c.ObservedGeneration = gen
		}
	}
}

func (podStatusStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	pod, oldPod := obj.(*corev1.Pod), old.(*corev1.Pod)
	errs := validateObjectMetaUpdate(&pod.ObjectMeta, &oldPod.ObjectMeta)
	statusPath := field.NewPath("status")
	if pod.Status.QOSClass != oldPod.Status.QOSClass {
		errs = append(errs, field.Invalid(statusPath.Child("qosClass"), pod.Status.QOSClass, "field is immutable"))
	}
	if n := pod.Status.NominatedNodeName; n != "" {
		for _, msg := range apivalidation.NameIsDNSSubdomain(n, false) {
			errs = append(errs, field.Invalid(statusPath.Child("nominatedNodeName"), n, msg))
		}
	}
	errs = append(errs, validatePodIPs(&pod.Status, statusPath)...)
	for i, cs := range pod.Status.ContainerStatuses {
		errs = append(errs, apivalidation.ValidateNonnegativeField(int64(cs.RestartCount), statusPath.Child("containerStatuses").Index(i).Child("restartCount"))...)
	}
	return errs
}

func validatePodIPs(status *corev1.PodStatus, statusPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := map[string]bool{}
	for i, ip := range status.PodIPs {
		p := statusPath.Child("podIPs").Index(i)
		errs = append(errs, validation.IsValidIP(p, ip.IP)...)
		if seen[ip.IP] {
			errs = append(errs, field.Duplicate(p, ip.IP))
		}
		seen[ip.IP] = true
	}
	if len(status.PodIPs) > 0 && status.PodIP != "" && status.PodIP != status.PodIPs[0].IP {
		errs = append(errs, field.Invalid(statusPath.Child("podIP"), status.PodIP, "must match the first entry of status.podIPs"))
	}
	return errs
}

// podAttrs returns kube-apiserver's selectable pod fields; the agent watches
// spec.nodeName=<node>, the scheduler spec.nodeName= and status.phase!=....
func podAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return nil, nil, unexpectedType("*corev1.Pod", obj)
	}
	f := objectMetaFields(&pod.ObjectMeta, true)
	f["spec.nodeName"] = pod.Spec.NodeName
	f["spec.restartPolicy"] = string(pod.Spec.RestartPolicy)
	f["spec.schedulerName"] = pod.Spec.SchedulerName
	f["spec.serviceAccountName"] = pod.Spec.ServiceAccountName
	f["spec.hostNetwork"] = strconv.FormatBool(pod.Spec.HostNetwork)
	f["status.phase"] = string(pod.Status.Phase)
	f["status.podIP"] = podIP(&pod.Status)
	f["status.nominatedNodeName"] = pod.Status.NominatedNodeName
	return labels.Set(pod.Labels), f, nil
}

func podIP(status *corev1.PodStatus) string {
	if len(status.PodIPs) > 0 {
		return status.PodIPs[0].IP
	}
	return status.PodIP
}

// terminalPhase reports a phase the pod never leaves.
func terminalPhase(p corev1.PodPhase) bool {
	return p == corev1.PodSucceeded || p == corev1.PodFailed
}
