package apiserver

import (
	"context"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/controlplane-lite/apiserver/registry"
	"github.com/skiff-sh/skiff/controlplane-lite/apiserver/storage"
)

// The test registry: namespaces, pods (+status, +binding) and replicasets
// (+status, +scale), with small strategies of our own. They are enough to drive
// every path of the HTTP layer; the real ones live in package registry.

var crudVerbs = []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}

func metaAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	m := accessor(obj)
	return labels.Set(m.GetLabels()), fields.Set{"metadata.name": m.GetName(), "metadata.namespace": m.GetNamespace()}, nil
}

func testDefinitions() []registry.Definition {
	return []registry.Definition{
		{
			Resource: storage.Resource{
				GroupResource:    schema.GroupResource{Resource: "namespaces"},
				GroupVersionKind: corev1.SchemeGroupVersion.WithKind("Namespace"),
				Prefix:           "/registry/namespaces",
				NewFunc:          func() runtime.Object { return &corev1.Namespace{} },
				NewListFunc:      func() runtime.Object { return &corev1.NamespaceList{} },
				AttrFunc: func(obj runtime.Object) (labels.Set, fields.Set, error) {
					ls, fs, _ := metaAttrs(obj)
					fs["status.phase"] = string(obj.(*corev1.Namespace).Status.Phase)
					return ls, fs, nil
				},
			},
			Singular:   "namespace",
			ShortNames: []string{"ns"},
			ListKind:   "NamespaceList",
			Verbs:      []string{"create", "delete", "get", "list", "patch", "update", "watch"},
			Strategy:   simpleStrategy{},
		},
		{
			Resource: storage.Resource{
				GroupResource:    schema.GroupResource{Resource: "pods"},
				GroupVersionKind: corev1.SchemeGroupVersion.WithKind("Pod"),
				Prefix:           "/registry/pods",
				Namespaced:       true,
				NewFunc:          func() runtime.Object { return &corev1.Pod{} },
				NewListFunc:      func() runtime.Object { return &corev1.PodList{} },
				AttrFunc: func(obj runtime.Object) (labels.Set, fields.Set, error) {
					ls, fs, _ := metaAttrs(obj)
					pod := obj.(*corev1.Pod)
					fs["spec.nodeName"] = pod.Spec.NodeName
					fs["status.phase"] = string(pod.Status.Phase)
					return ls, fs, nil
				},
			},
			Singular:   "pod",
			ShortNames: []string{"po"},
			Categories: []string{"all"},
			ListKind:   "PodList",
			Verbs:      crudVerbs,
			Strategy:   podStrategy{},
			Subresources: map[string]registry.Subresource{
				"status": {Verbs: []string{"get", "patch", "update"}, Status: podStatusStrategy{}},
				"binding": {
					GroupVersionKind: corev1.SchemeGroupVersion.WithKind("Binding"),
					Verbs:            []string{"create"},
					New:              func() runtime.Object { return &corev1.Binding{} },
					Apply:            bindPod,
				},
			},
		},
		{
			Resource: storage.Resource{
				GroupResource:    schema.GroupResource{Group: "apps", Resource: "replicasets"},
				GroupVersionKind: appsv1.SchemeGroupVersion.WithKind("ReplicaSet"),
				Prefix:           "/registry/replicasets",
				Namespaced:       true,
				NewFunc:          func() runtime.Object { return &appsv1.ReplicaSet{} },
				NewListFunc:      func() runtime.Object { return &appsv1.ReplicaSetList{} },
				AttrFunc: func(obj runtime.Object) (labels.Set, fields.Set, error) {
					ls, fs, _ := metaAttrs(obj)
					fs["status.replicas"] = fmt.Sprint(obj.(*appsv1.ReplicaSet).Status.Replicas)
					return ls, fs, nil
				},
			},
			Singular:   "replicaset",
			ShortNames: []string{"rs"},
			Categories: []string{"all"},
			ListKind:   "ReplicaSetList",
			Verbs:      crudVerbs,
			Strategy:   rsStrategy{},
			Subresources: map[string]registry.Subresource{
				"status": {Verbs: []string{"get", "patch", "update"}, Status: rsStatusStrategy{}},
				"scale": {
					GroupVersionKind: autoscalingv1.SchemeGroupVersion.WithKind("Scale"),
					Verbs:            []string{"get", "patch", "update"},
					New:              func() runtime.Object { return &autoscalingv1.Scale{} },
					Get:              rsScale,
					Apply:            applyRSScale,
				},
			},
		},
	}
}

// simpleStrategy accepts anything and prints name and age.
type simpleStrategy struct{}

func (simpleStrategy) PrepareForCreate(context.Context, runtime.Object)                 {}
func (simpleStrategy) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}
func (simpleStrategy) Default(runtime.Object)                                           {}
func (simpleStrategy) Validate(context.Context, runtime.Object) field.ErrorList         { return nil }
func (simpleStrategy) ValidateUpdate(context.Context, runtime.Object, runtime.Object) field.ErrorList {
	return nil
}
func (simpleStrategy) GracefulDelete(context.Context, runtime.Object, *metav1.DeleteOptions) bool {
	return false
}
func (simpleStrategy) ConvertToTable(_ context.Context, obj runtime.Object) (*metav1.Table, error) {
	return nameAgeTable(obj, nil)
}

// nameAgeTable prints Name and Age, plus extra cells from cells for each object.
func nameAgeTable(obj runtime.Object, cells func(runtime.Object) []any, extra ...metav1.TableColumnDefinition) (*metav1.Table, error) {
	table := &metav1.Table{ColumnDefinitions: append([]metav1.TableColumnDefinition{
		{Name: "Name", Type: "string", Format: "name"},
	}, append(extra, metav1.TableColumnDefinition{Name: "Age", Type: "string"})...)}
	items := []runtime.Object{obj}
	switch l := obj.(type) {
	case *appsv1.ReplicaSetList:
		items = nil
		for i := range l.Items {
			items = append(items, &l.Items[i])
		}
	case *corev1.PodList:
		items = nil
		for i := range l.Items {
			items = append(items, &l.Items[i])
		}
	case *corev1.NamespaceList:
		items = nil
		for i := range l.Items {
			items = append(items, &l.Items[i])
		}
	}
	for _, item := range items {
		m := accessor(item)
		row := []any{m.GetName()}
		if cells != nil {
			row = append(row, cells(item)...)
		}
		row = append(row, time.Since(m.GetCreationTimestamp().Time).Round(time.Second).String())
		table.Rows = append(table.Rows, metav1.TableRow{Cells: row, Object: runtime.RawExtension{Object: item}})
	}
	return table, nil
}

// rsStrategy is a small ReplicaSet strategy: generation, a few defaults, the
// selector checks.
type rsStrategy struct{ simpleStrategy }

func (rsStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	rs := obj.(*appsv1.ReplicaSet)
	rs.Status = appsv1.ReplicaSetStatus{}
	rs.Generation = 1
}

func (rsStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	rs, oldRS := obj.(*appsv1.ReplicaSet), old.(*appsv1.ReplicaSet)
	rs.Status = oldRS.Status
	if !apiequality.Semantic.DeepEqual(rs.Spec, oldRS.Spec) {
		rs.Generation = oldRS.Generation + 1
	}
}

func (rsStrategy) Default(obj runtime.Object) {
	rs := obj.(*appsv1.ReplicaSet)
	if rs.Spec.Replicas == nil {
		one := int32(1)
		rs.Spec.Replicas = &one
	}
	spec := &rs.Spec.Template.Spec
	if spec.RestartPolicy == "" {
		spec.RestartPolicy = corev1.RestartPolicyAlways
	}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		if c.ImagePullPolicy == "" {
			c.ImagePullPolicy = corev1.PullIfNotPresent
			if !strings.Contains(c.Image, ":") || strings.HasSuffix(c.Image, ":latest") {
				c.ImagePullPolicy = corev1.PullAlways
			}
		}
	}
}

func (rsStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	rs := obj.(*appsv1.ReplicaSet)
	var errs field.ErrorList
	spec := field.NewPath("spec")
	if rs.Spec.Replicas != nil && *rs.Spec.Replicas < 0 {
		errs = append(errs, field.Invalid(spec.Child("replicas"), *rs.Spec.Replicas, "must be greater than or equal to 0"))
	}
	if rs.Spec.Selector == nil {
		return append(errs, field.Required(spec.Child("selector"), ""))
	}
	sel, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
	if err == nil && !sel.Matches(labels.Set(rs.Spec.Template.Labels)) {
		errs = append(errs, field.Invalid(spec.Child("template", "metadata", "labels"), rs.Spec.Template.Labels, "`selector` does not match template `labels`"))
	}
	return errs
}

func (s rsStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	errs := s.Validate(ctx, obj)
	if !apiequality.Semantic.DeepEqual(obj.(*appsv1.ReplicaSet).Spec.Selector, old.(*appsv1.ReplicaSet).Spec.Selector) {
		errs = append(errs, field.Invalid(field.NewPath("spec", "selector"), obj.(*appsv1.ReplicaSet).Spec.Selector, "field is immutable"))
	}
	return errs
}

func (rsStrategy) ConvertToTable(_ context.Context, obj runtime.Object) (*metav1.Table, error) {
	return nameAgeTable(obj, func(o runtime.Object) []any {
		rs := o.(*appsv1.ReplicaSet)
		var names []string
		for _, c := range rs.Spec.Template.Spec.Containers {
			names = append(names, c.Name)
		}
		return []any{int64(*rs.Spec.Replicas), int64(rs.Status.Replicas), strings.Join(names, ",")}
	}, metav1.TableColumnDefinition{Name: "Desired", Type: "integer"}, metav1.TableColumnDefinition{Name: "Current", Type: "integer"},
		metav1.TableColumnDefinition{Name: "Containers", Type: "string", Priority: 1})
}

type rsStatusStrategy struct{}

func (rsStatusStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	obj.(*appsv1.ReplicaSet).Spec = old.(*appsv1.ReplicaSet).Spec
}

func (rsStatusStrategy) ValidateUpdate(_ context.Context, obj, _ runtime.Object) field.ErrorList {
	if r := obj.(*appsv1.ReplicaSet).Status.Replicas; r < 0 {
		return field.ErrorList{field.Invalid(field.NewPath("status", "replicas"), r, "must be greater than or equal to 0")}
	}
	return nil
}

func rsScale(parent runtime.Object) (runtime.Object, error) {
	rs := parent.(*appsv1.ReplicaSet)
	return &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{Name: rs.Name, Namespace: rs.Namespace, UID: rs.UID,
			ResourceVersion: rs.ResourceVersion, CreationTimestamp: rs.CreationTimestamp},
		Spec:   autoscalingv1.ScaleSpec{Replicas: *rs.Spec.Replicas},
		Status: autoscalingv1.ScaleStatus{Replicas: rs.Status.Replicas},
	}, nil
}

func applyRSScale(_ context.Context, parent, sub runtime.Object) (runtime.Object, error) {
	rs := parent.(*appsv1.ReplicaSet)
	replicas := sub.(*autoscalingv1.Scale).Spec.Replicas
	rs.Spec.Replicas = &replicas
	return rs, nil
}

// podStrategy deletes bound pods gracefully.
type podStrategy struct{ simpleStrategy }

func (podStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	obj.(*corev1.Pod).Status = corev1.PodStatus{Phase: corev1.PodPending}
}

func (podStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	obj.(*corev1.Pod).Status = old.(*corev1.Pod).Status
}

func (podStrategy) GracefulDelete(_ context.Context, obj runtime.Object, opts *metav1.DeleteOptions) bool {
	pod := obj.(*corev1.Pod)
	if pod.Spec.NodeName == "" || opts.GracePeriodSeconds != nil && *opts.GracePeriodSeconds == 0 {
		return false
	}
	if opts.GracePeriodSeconds == nil {
		grace := int64(30)
		if pod.Spec.TerminationGracePeriodSeconds != nil {
			grace = *pod.Spec.TerminationGracePeriodSeconds
		}
		opts.GracePeriodSeconds = &grace
	}
	return true
}

type podStatusStrategy struct{}

func (podStatusStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	obj.(*corev1.Pod).Spec = old.(*corev1.Pod).Spec
}

func (podStatusStrategy) ValidateUpdate(context.Context, runtime.Object, runtime.Object) field.ErrorList {
	return nil
}

func bindPod(_ context.Context, parent, sub runtime.Object) (runtime.Object, error) {
	pod, binding := parent.(*corev1.Pod), sub.(*corev1.Binding)
	if pod.Spec.NodeName != "" {
		return nil, apierrors.NewConflict(schema.GroupResource{Resource: "pods/binding"}, pod.Name,
			fmt.Errorf("pod %s is already assigned to node %q", pod.Name, pod.Spec.NodeName))
	}
	pod.Spec.NodeName = binding.Target.Name
	return pod, nil
}
