package registry

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	extensionsv1beta1 "k8s.io/api/extensions/v1beta1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func replicaSetGR() schema.GroupResource {
	return schema.GroupResource{Group: appsv1.GroupName, Resource: "replicasets"}
}

func replicaSetGVK() schema.GroupVersionKind { return appsv1.SchemeGroupVersion.WithKind("ReplicaSet") }

func scaleGVK() schema.GroupVersionKind { return autoscalingv1.SchemeGroupVersion.WithKind("Scale") }

type replicaSetStrategy struct {
	immediateDelete
	now clock
}

func (s replicaSetStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	rs := obj.(*appsv1.ReplicaSet)
	s.Default(rs)
	clearDeletion(&rs.ObjectMeta)
	rs.Status = appsv1.ReplicaSetStatus{}
	rs.Generation = 1
}

func (s replicaSetStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	rs, oldRS := obj.(*appsv1.ReplicaSet), old.(*appsv1.ReplicaSet)
	s.Default(rs)
	rs.Status = oldRS.Status
	updateGeneration(&rs.ObjectMeta, &oldRS.ObjectMeta, !equality.Semantic.DeepEqual(rs.Spec, oldRS.Spec))
}

// Default applies apps/v1's replicas default (1) and the pod template's defaults.
func (replicaSetStrategy) Default(obj runtime.Object) {
	rs := obj.(*appsv1.ReplicaSet)
	if rs.Spec.Replicas == nil {
		rs.Spec.Replicas = ptrTo[int32](1)
	}
	defaultPodSpec(&rs.Spec.Template.Spec)
}

func (replicaSetStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	rs := obj.(*appsv1.ReplicaSet)
	errs := validateObjectMeta(&rs.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	return append(errs, validateReplicaSetSpec(&rs.Spec, field.NewPath("spec"))...)
}

func (replicaSetStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	rs, oldRS := obj.(*appsv1.ReplicaSet), old.(*appsv1.ReplicaSet)
	errs := validateObjectMetaUpdate(&rs.ObjectMeta, &oldRS.ObjectMeta)
	errs = append(errs, validateReplicaSetSpec(&rs.Spec, field.NewPath("spec"))...)
	// apps/v1 made the selector immutable: changing it would orphan the running pods.
	return append(errs, apivalidation.ValidateImmutableField(rs.Spec.Selector, oldRS.Spec.Selector, field.NewPath("spec", "selector"))...)
}

func validateReplicaSetSpec(spec *appsv1.ReplicaSetSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if spec.Replicas != nil {
		errs = append(errs, apivalidation.ValidateNonnegativeField(int64(*spec.Replicas), fldPath.Child("replicas"))...)
	}
	errs = append(errs, apivalidation.ValidateNonnegativeField(int64(spec.MinReadySeconds), fldPath.Child("minReadySeconds"))...)
	if spec.Selector == nil {
		errs = append(errs, field.Required(fldPath.Child("selector"), ""))
	} else {
		errs = append(errs, metav1validation.ValidateLabelSelector(spec.Selector, metav1validation.LabelSelectorValidationOptions{}, fldPath.Child("selector"))...)
		if len(spec.Selector.MatchLabels)+len(spec.Selector.MatchExpressions) == 0 {
			// kube-apiserver's wording, shared with Deployments.
			errs = append(errs, field.Invalid(fldPath.Child("selector"), spec.Selector, "empty selector is invalid for deployment"))
		}
	}
	// A nil selector selects nothing, so the template check below reports it too, as in
	// kube-apiserver.
	selector, err := metav1.LabelSelectorAsSelector(spec.Selector)
	if err != nil {
		return append(errs, field.Invalid(fldPath.Child("selector"), spec.Selector, "invalid label selector"))
	}
	return append(errs, validateReplicaSetTemplate(&spec.Template, selector, fldPath.Child("template"))...)
}

func validateReplicaSetTemplate(tmpl *corev1.PodTemplateSpec, selector labels.Selector, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	labelsPath := fldPath.Child("metadata", "labels")
	if !selector.Empty() && !selector.Matches(labels.Set(tmpl.Labels)) {
		errs = append(errs, field.Invalid(labelsPath, tmpl.Labels, "`selector` does not match template `labels`"))
	}
	// kube names these two "spec.template.labels" and "spec.template.annotations" (no
	// "metadata"); keep its paths so error messages match.
	errs = append(errs, metav1validation.ValidateLabels(tmpl.Labels, fldPath.Child("labels"))...)
	errs = append(errs, apivalidation.ValidateAnnotations(tmpl.Annotations, fldPath.Child("annotations"))...)
	specPath := fldPath.Child("spec")
	errs = append(errs, validatePodSpec(&tmpl.Spec, specPath)...)
	if len(tmpl.Spec.EphemeralContainers) > 0 {
		errs = append(errs, field.Forbidden(specPath.Child("ephemeralContainers"), "ephemeral containers not allowed in pod template"))
	}
	// A ReplicaSet replaces pods that exit, so its pods must restart in place too.
	if tmpl.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		errs = append(errs, field.NotSupported(specPath.Child("restartPolicy"), tmpl.Spec.RestartPolicy, []corev1.RestartPolicy{corev1.RestartPolicyAlways}))
	}
	if tmpl.Spec.ActiveDeadlineSeconds != nil {
		errs = append(errs, field.Forbidden(specPath.Child("activeDeadlineSeconds"), "activeDeadlineSeconds in ReplicaSet is not Supported"))
	}
	return errs
}

// replicaSetStatusStrategy serves replicasets/status: the controller writes status only.
type replicaSetStatusStrategy struct{}

func (replicaSetStatusStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	rs, oldRS := obj.(*appsv1.ReplicaSet), old.(*appsv1.ReplicaSet)
	keepSystemMeta(&rs.ObjectMeta, &oldRS.ObjectMeta)
	rs.Spec = oldRS.Spec
}

func (replicaSetStatusStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	rs, oldRS := obj.(*appsv1.ReplicaSet), old.(*appsv1.ReplicaSet)
	errs := validateObjectMetaUpdate(&rs.ObjectMeta, &oldRS.ObjectMeta)
	return append(errs, validateReplicaSetStatus(&rs.Status, field.NewPath("status"))...)
}

func validateReplicaSetStatus(s *appsv1.ReplicaSetStatus, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, f := range []struct {
		name  string
		value int64
	}{
		{"replicas", int64(s.Replicas)}, {"fullyLabeledReplicas", int64(s.FullyLabeledReplicas)},
		{"readyReplicas", int64(s.ReadyReplicas)}, {"availableReplicas", int64(s.AvailableReplicas)},
		{"observedGeneration", s.ObservedGeneration},
	} {
		errs = append(errs, apivalidation.ValidateNonnegativeField(f.value, fldPath.Child(f.name))...)
	}
	if s.TerminatingReplicas != nil {
		errs = append(errs, apivalidation.ValidateNonnegativeField(int64(*s.TerminatingReplicas), fldPath.Child("terminatingReplicas"))...)
	}
	if s.FullyLabeledReplicas > s.Replicas {
		errs = append(errs, field.Invalid(fldPath.Child("fullyLabeledReplicas"), s.FullyLabeledReplicas, "cannot be greater than status.replicas"))
	}
	if s.ReadyReplicas > s.Replicas {
		errs = append(errs, field.Invalid(fldPath.Child("readyReplicas"), s.ReadyReplicas, "cannot be greater than status.replicas"))
	}
	if s.AvailableReplicas > s.Replicas {
		errs = append(errs, field.Invalid(fldPath.Child("availableReplicas"), s.AvailableReplicas, "cannot be greater than status.replicas"))
	}
	if s.AvailableReplicas > s.ReadyReplicas {
		errs = append(errs, field.Invalid(fldPath.Child("availableReplicas"), s.AvailableReplicas, "cannot be greater than readyReplicas"))
	}
	return errs
}

// scaleFromReplicaSet is replicasets/scale's Get: the autoscaling/v1 view of the
// desired and current replica counts, with the selector as a string for HPAs.
func scaleFromReplicaSet(parent runtime.Object) (runtime.Object, error) {
	rs, ok := parent.(*appsv1.ReplicaSet)
	if !ok {
		return nil, unexpectedType("*appsv1.ReplicaSet", parent)
	}
	selector, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
	if err != nil {
		return nil, apierrors.NewBadRequest("invalid selector: " + err.Error())
	}
	var replicas int32
	if rs.Spec.Replicas != nil {
		replicas = *rs.Spec.Replicas
	}
	return &autoscalingv1.Scale{
		TypeMeta: metav1.TypeMeta{APIVersion: scaleGVK().GroupVersion().String(), Kind: scaleGVK().Kind},
		ObjectMeta: metav1.ObjectMeta{
			Name:              rs.Name,
			Namespace:         rs.Namespace,
			UID:               rs.UID,
			ResourceVersion:   rs.ResourceVersion,
			CreationTimestamp: rs.CreationTimestamp,
		},
		Spec:   autoscalingv1.ScaleSpec{Replicas: replicas},
		Status: autoscalingv1.ScaleStatus{Replicas: rs.Status.Replicas, Selector: selector.String()},
	}, nil
}

// applyScale is replicasets/scale's Apply: it validates the Scale and sets
// spec.replicas. The Scale's resourceVersion is carried onto the ReplicaSet so a stale
// Scale fails with Conflict in the store, as in kube-apiserver. The REST layer then runs
// the ReplicaSet's own PrepareForUpdate and ValidateUpdate (generation bump).
func applyScale(_ context.Context, parent, sub runtime.Object) (runtime.Object, error) {
	rs, ok := parent.(*appsv1.ReplicaSet)
	if !ok {
		return nil, unexpectedType("*appsv1.ReplicaSet", parent)
	}
	scale, ok := sub.(*autoscalingv1.Scale)
	if !ok {
		return nil, unexpectedType("*autoscalingv1.Scale", sub)
	}
	errs := apivalidation.ValidateNonnegativeField(int64(scale.Spec.Replicas), field.NewPath("spec", "replicas"))
	if scale.Name != "" && scale.Name != rs.Name {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), scale.Name, "must match the name of the ReplicaSet"))
	}
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(scaleGVK().GroupKind(), rs.Name, errs)
	}
	if scale.UID != "" && scale.UID != rs.UID {
		return nil, apierrors.NewConflict(replicaSetGR(), rs.Name,
			fmt.Errorf("precondition failed: UID in precondition: %v, UID in object meta: %v", scale.UID, rs.UID))
	}
	if scale.ResourceVersion != "" {
		rs.ResourceVersion = scale.ResourceVersion
	}
	rs.Spec.Replicas = ptrTo(scale.Spec.Replicas)
	return rs, nil
}

func replicaSetAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	rs, ok := obj.(*appsv1.ReplicaSet)
	if !ok {
		return nil, nil, unexpectedType("*appsv1.ReplicaSet", obj)
	}
	f := objectMetaFields(&rs.ObjectMeta, true)
	f["status.replicas"] = strconv.Itoa(int(rs.Status.Replicas))
	return labels.Set(rs.Labels), f, nil
}

func replicaSetColumns() []metav1.TableColumnDefinition {
	spec, status := extensionsv1beta1.ReplicaSetSpec{}.SwaggerDoc(), extensionsv1beta1.ReplicaSetStatus{}.SwaggerDoc()
	return []metav1.TableColumnDefinition{
		nameColumn(),
		{Name: "Desired", Type: "integer", Description: spec["replicas"]},
		{Name: "Current", Type: "integer", Description: status["replicas"]},
		{Name: "Ready", Type: "integer", Description: status["readyReplicas"]},
		ageColumn(),
		{Name: "Containers", Type: "string", Priority: 1, Description: "Names of each container in the template."},
		{Name: "Images", Type: "string", Priority: 1, Description: "Images referenced by each container in the template."},
		{Name: "Selector", Type: "string", Priority: 1, Description: spec["selector"]},
	}
}

func (s replicaSetStrategy) ConvertToTable(_ context.Context, obj runtime.Object) (*metav1.Table, error) {
	return tableOf(obj, s.now, replicaSetColumns(), replicaSetItems, replicaSetRow)
}

func replicaSetItems(list *appsv1.ReplicaSetList) []appsv1.ReplicaSet { return list.Items }

func replicaSetRow(rs *appsv1.ReplicaSet, now time.Time) metav1.TableRow {
	var desired int64
	if rs.Spec.Replicas != nil {
		desired = int64(*rs.Spec.Replicas)
	}
	names, images := containerCells(rs.Spec.Template.Spec.Containers)
	return newRow(rs, rs.Name, desired, int64(rs.Status.Replicas), int64(rs.Status.ReadyReplicas),
		age(now, rs.CreationTimestamp), names, images, metav1.FormatLabelSelector(rs.Spec.Selector))
}

// containerCells lists a template's container names and images, comma separated.
func containerCells(containers []corev1.Container) (names, images string) {
	n, im := make([]string, 0, len(containers)), make([]string, 0, len(containers))
	for _, c := range containers {
		n = append(n, c.Name)
		im = append(im, c.Image)
	}
	return strings.Join(n, ","), strings.Join(im, ",")
}

func newScale() *autoscalingv1.Scale { return &autoscalingv1.Scale{} }
