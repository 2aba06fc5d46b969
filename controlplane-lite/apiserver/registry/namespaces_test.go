package registry

import (
	"context"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestNamespaceCreateAddsKubernetesFinalizer(t *testing.T) {
	s := namespaceStrategy{now: fixedClock}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}}
	s.PrepareForCreate(context.Background(), ns)
	if !slices.Equal(ns.Spec.Finalizers, []corev1.FinalizerName{corev1.FinalizerKubernetes}) {
		t.Fatalf("spec.finalizers = %v, want [kubernetes]", ns.Spec.Finalizers)
	}
	if !s.Finalizing(ns) {
		t.Error("a namespace with the kubernetes finalizer is not finalizing")
	}
	s.PrepareForDelete(ns)
	if ns.Status.Phase != corev1.NamespaceTerminating {
		t.Errorf("phase after delete = %s, want Terminating", ns.Status.Phase)
	}
	ns.Spec.Finalizers = nil
	if s.Finalizing(ns) {
		t.Error("a namespace without spec.finalizers is still finalizing")
	}
}

func TestNamespaceFinalizeChangesOnlyFinalizers(t *testing.T) {
	old := &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Labels: map[string]string{"a": "b"}, ResourceVersion: "7"},
		Spec:       corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{corev1.FinalizerKubernetes}},
		Status:     corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating},
	}
	update := old.DeepCopy()
	update.Labels = map[string]string{"changed": "yes"}
	update.Status.Phase = corev1.NamespaceActive
	update.Spec.Finalizers = nil
	st := NamespaceFinalizeStrategy()
	st.PrepareForUpdate(context.Background(), update, old)
	if len(update.Spec.Finalizers) != 0 || update.Labels["a"] != "b" || update.Status.Phase != corev1.NamespaceTerminating {
		t.Errorf("finalize kept %+v, want only spec.finalizers changed", update)
	}
	if errs := st.ValidateUpdate(context.Background(), update, old); len(errs) > 0 {
		t.Errorf("ValidateUpdate: %v", errs)
	}
}
