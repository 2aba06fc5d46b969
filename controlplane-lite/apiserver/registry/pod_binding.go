package registry

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// bindPod is pods/binding: the scheduler's POST of a v1 Binding assigns the pod to a
// node. A pod is bound once: binding an assigned pod fails with 409 Conflict, as in
// kube-apiserver, even to the same node.
func bindPod(now clock) func(ctx context.Context, parent, sub runtime.Object) (runtime.Object, error) {
	return func(_ context.Context, parent, sub runtime.Object) (runtime.Object, error) {
		pod, ok := parent.(*corev1.Pod)
		if !ok {
			return nil, unexpectedType("*corev1.Pod", parent)
		}
		binding, ok := sub.(*corev1.Binding)
		if !ok {
			return nil, unexpectedType("*corev1.Binding", sub)
		}
		if err := validateBinding(binding, pod); err != nil {
			return nil, err
		}
		if err := bindable(pod, binding); err != nil {
			return nil, apierrors.NewConflict(podBindingGR(), pod.Name, err)
		}
		if binding.ResourceVersion != "" {
			// The store rejects the write with Conflict unless the pod is unchanged.
			pod.ResourceVersion = binding.ResourceVersion
		}
		pod.Spec.NodeName = binding.Target.Name
		// The scheduler may hand over annotations and (topology) labels with the binding.
		pod.Annotations = mergeStrings(pod.Annotations, binding.Annotations)
		pod.Labels = mergeStrings(pod.Labels, binding.Labels)
		pod.Status.NominatedNodeName = "" // the nomination is fulfilled
		setPodCondition(&pod.Status, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}, metav1.NewTime(now()))
		return pod, nil
	}
}

func mergeStrings(dst, src map[string]string) map[string]string {
	if len(src) == 0 {
		return dst
	}
	if dst == nil {
		dst = make(map[string]string, len(src))
	}
	for k, v := range src {
		dst[k] = v
	}
	return dst
}

// validateBinding returns 422 Invalid for a bad target where kube-apiserver, lacking a
// binding strategy, answers 500 with the same field errors.
func validateBinding(binding *corev1.Binding, pod *corev1.Pod) error {
	if binding.Name != pod.Name {
		return apierrors.NewBadRequest("name in URL does not match name in Binding object")
	}
	var errs field.ErrorList
	targetPath := field.NewPath("target")
	kind, name := binding.Target.Kind, binding.Target.Name
	if kind != "" && kind != "Node" {
		errs = append(errs, field.NotSupported(targetPath.Child("kind"), kind, []string{"Node", "<empty>"}))
	}
	switch {
	case name == "":
		errs = append(errs, field.Required(targetPath.Child("name"), ""))
	case kind == "" || kind == "Node":
		for _, msg := range apivalidation.NameIsDNSSubdomain(name, false) {
			errs = append(errs, field.Invalid(targetPath.Child("name"), name, msg))
		}
	}
	if len(errs) > 0 {
		return apierrors.NewInvalid(bindingGK(), pod.Name, errs)
	}
	return nil
}

// bindable says why pod cannot be bound, or nil.
func bindable(pod *corev1.Pod, binding *corev1.Binding) error {
	switch {
	case binding.UID != "" && binding.UID != pod.UID:
		return fmt.Errorf("precondition failed: UID in precondition: %v, UID in object meta: %v", binding.UID, pod.UID)
	case pod.DeletionTimestamp != nil:
		return fmt.Errorf("pod %s is being deleted, cannot be assigned to a host", pod.Name)
	case pod.Spec.NodeName != "":
		return fmt.Errorf("pod %v is already assigned to node %q", pod.Name, pod.Spec.NodeName)
	case len(pod.Spec.SchedulingGates) != 0:
		return fmt.Errorf("pod %v has non-empty .spec.schedulingGates", pod.Name)
	}
	return nil
}

// setPodCondition replaces or adds a condition, moving lastTransitionTime only when the
// status flips.
func setPodCondition(status *corev1.PodStatus, c corev1.PodCondition, now metav1.Time) {
	for i := range status.Conditions {
		old := &status.Conditions[i]
		if old.Type != c.Type {
			continue
		}
		c.LastTransitionTime = now
		if old.Status == c.Status {
			c.LastTransitionTime = old.LastTransitionTime
		}
		*old = c
		return
	}
	c.LastTransitionTime = now
	status.Conditions = append(status.Conditions, c)
}
