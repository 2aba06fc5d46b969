package registry

import (
	"context"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func namespaceGR() schema.GroupResource { return schema.GroupResource{Resource: "namespaces"} }

// namespaceStrategy gives new namespaces the "kubernetes" spec finalizer, as
// kube-apiserver does: a deleted namespace turns Terminating and stays until the
// namespace controller has deleted its contents and removed the finalizer.
type namespaceStrategy struct {
	immediateDelete
	now clock
}

// Default sets phase Active and the kubernetes.io/metadata.name label, which kube keeps
// equal to the name so namespaces can be selected by name in label selectors.
func (namespaceStrategy) Default(obj runtime.Object) {
	ns := obj.(*corev1.Namespace)
	if ns.Status.Phase == "" {
		ns.Status.Phase = corev1.NamespaceActive
	}
	setNamespaceNameLabel(ns)
}

func setNamespaceNameLabel(ns *corev1.Namespace) {
	if ns.Name == "" {
		return
	}
	if ns.Labels == nil {
		ns.Labels = map[string]string{}
	}
	ns.Labels[corev1.LabelMetadataName] = ns.Name
}

func (s namespaceStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	ns := obj.(*corev1.Namespace)
	s.Default(ns)
	clearDeletion(&ns.ObjectMeta)
	ns.Status = corev1.NamespaceStatus{Phase: corev1.NamespaceActive}
	if !slices.Contains(ns.Spec.Finalizers, corev1.FinalizerKubernetes) {
		ns.Spec.Finalizers = append(ns.Spec.Finalizers, corev1.FinalizerKubernetes)
	}
}

// Finalizing reports whether a namespace still has spec.finalizers: a delete only marks
// it then, and it is removed once the last one is gone (through namespaces/finalize).
func (namespaceStrategy) Finalizing(obj runtime.Object) bool {
	ns, ok := obj.(*corev1.Namespace)
	return ok && len(ns.Spec.Finalizers) > 0
}

// PrepareForDelete turns a namespace being deleted Terminating, which the namespace
// controller and the admission of new content look for.
func (namespaceStrategy) PrepareForDelete(obj runtime.Object) {
	if ns, ok := obj.(*corev1.Namespace); ok {
		ns.Status.Phase = corev1.NamespaceTerminating
	}
}

func (s namespaceStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	ns, oldNS := obj.(*corev1.Namespace), old.(*corev1.Namespace)
	s.Default(ns)
	keepSystemMeta(&ns.ObjectMeta, &oldNS.ObjectMeta)
	ns.Spec.Finalizers = oldNS.Spec.Finalizers
	ns.Status = oldNS.Status
}

func (namespaceStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	ns := obj.(*corev1.Namespace)
	errs := validateObjectMeta(&ns.ObjectMeta, false, apivalidation.ValidateNamespaceName)
	return append(errs, validateNamespaceFinalizers(ns.Spec.Finalizers)...)
}

func (namespaceStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	ns, oldNS := obj.(*corev1.Namespace), old.(*corev1.Namespace)
	errs := validateObjectMetaUpdate(&ns.ObjectMeta, &oldNS.ObjectMeta)
	return append(errs, validateNamespaceFinalizers(ns.Spec.Finalizers)...)
}

func validateNamespaceFinalizers(finalizers []corev1.FinalizerName) field.ErrorList {
	var errs field.ErrorList
	// kube names the list, not the entry.
	fldPath := field.NewPath("spec", "finalizers")
	for _, f := range finalizers {
		name := string(f)
		errs = append(errs, apivalidation.ValidateFinalizerName(name, fldPath)...)
		if !strings.Contains(name, "/") && !standardFinalizer(name) {
			errs = append(errs, field.Invalid(fldPath, name, "name is neither a standard finalizer name nor is it fully qualified"))
		}
	}
	return errs
}

// standardFinalizer: kube's own finalizers may be unqualified.
func standardFinalizer(name string) bool {
	return name == string(corev1.FinalizerKubernetes) || name == metav1.FinalizerOrphanDependents || name == metav1.FinalizerDeleteDependents
}

// NamespaceFinalizeStrategy is the update strategy of namespaces/finalize, which changes
// only spec.finalizers (the namespace controller removes "kubernetes" through it).
func NamespaceFinalizeStrategy() StatusStrategy { return namespaceFinalizeStrategy{} }

type namespaceFinalizeStrategy struct{}

func (namespaceFinalizeStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	ns, oldNS := obj.(*corev1.Namespace), old.(*corev1.Namespace)
	finalizers := ns.Spec.Finalizers
	*ns = *oldNS.DeepCopy()
	ns.Spec.Finalizers = finalizers
}

func (namespaceFinalizeStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	ns, oldNS := obj.(*corev1.Namespace), old.(*corev1.Namespace)
	errs := validateObjectMetaUpdate(&ns.ObjectMeta, &oldNS.ObjectMeta)
	return append(errs, validateNamespaceFinalizers(ns.Spec.Finalizers)...)
}

// namespaceStatusStrategy serves namespaces/status.
type namespaceStatusStrategy struct{}

func (namespaceStatusStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	ns, oldNS := obj.(*corev1.Namespace), old.(*corev1.Namespace)
	keepSystemMeta(&ns.ObjectMeta, &oldNS.ObjectMeta)
	ns.Spec = oldNS.Spec
}

func (namespaceStatusStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	ns, oldNS := obj.(*corev1.Namespace), old.(*corev1.Namespace)
	errs := validateObjectMetaUpdate(&ns.ObjectMeta, &oldNS.ObjectMeta)
	if p := ns.Status.Phase; p != corev1.NamespaceActive && p != corev1.NamespaceTerminating {
		errs = append(errs, field.NotSupported(field.NewPath("status", "phase"), p, []corev1.NamespacePhase{corev1.NamespaceActive, corev1.NamespaceTerminating}))
	}
	return errs
}

// namespaceAttrs adds kube's legacy "name" field next to metadata.name.
func namespaceAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return nil, nil, unexpectedType("*corev1.Namespace", obj)
	}
	f := objectMetaFields(&ns.ObjectMeta, false)
	f["status.phase"] = string(ns.Status.Phase)
	f["name"] = ns.Name
	return labels.Set(ns.Labels), f, nil
}

func namespaceColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		nameColumn(),
		{Name: "Status", Type: "string", Description: "The status of the namespace"},
		ageColumn(),
	}
}

func (s namespaceStrategy) ConvertToTable(_ context.Context, obj runtime.Object) (*metav1.Table, error) {
	return tableOf(obj, s.now, namespaceColumns(), namespaceItems, namespaceRow)
}

func namespaceItems(list *corev1.NamespaceList) []corev1.Namespace { return list.Items }

func namespaceRow(ns *corev1.Namespace, now time.Time) metav1.TableRow {
	return newRow(ns, ns.Name, string(ns.Status.Phase), age(now, ns.CreationTimestamp))
}
