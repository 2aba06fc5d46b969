package apiserver

import (
	"context"
	"slices"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// TestNamespaceLifecycleOnEtcd: a namespace is created with the kubernetes finalizer,
// a delete turns it Terminating (no new content), and finalizing removes it; the
// system namespaces cannot be deleted.
func TestNamespaceLifecycleOnEtcd(t *testing.T) {
	defs, stores := etcdStores(t)
	s := newTestServerWith(t, func(cfg *Config) { cfg.Definitions, cfg.Stores = defs, stores })
	ctx := context.Background()
	if err := EnsureDefaultNamespaces(ctx, stores[namespacesGR()]); err != nil {
		t.Fatal(err)
	}
	client := kubernetes.NewForConfigOrDie(s.restConfig())
	namespaces := client.CoreV1().Namespaces()

	for _, name := range []string{"default", "kube-system", "kube-public"} {
		err := namespaces.Delete(ctx, name, metav1.DeleteOptions{})
		if !apierrors.IsForbidden(err) {
			t.Errorf("delete namespace %s: %v, want 403 Forbidden", name, err)
		}
	}

	ns, err := namespaces.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ns.Spec.Finalizers, []corev1.FinalizerName{corev1.FinalizerKubernetes}) {
		t.Fatalf("spec.finalizers = %v, want [kubernetes]", ns.Spec.Finalizers)
	}
	if err := namespaces.Delete(ctx, "app", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	ns, err = namespaces.Get(ctx, "app", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("a namespace with spec.finalizers was removed at once: %v", err)
	}
	if ns.DeletionTimestamp == nil || ns.Status.Phase != corev1.NamespaceTerminating {
		t.Fatalf("deleted namespace: deletionTimestamp %v phase %s, want set and Terminating", ns.DeletionTimestamp, ns.Status.Phase)
	}
	_, err = client.CoordinationV1().Leases("app").Create(ctx,
		&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "late"}}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("create in a terminating namespace: %v, want 403 Forbidden", err)
	}

	ns.Spec.Finalizers = nil
	if _, err := namespaces.Finalize(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("finalize: %v", err)
	}
	if _, err := namespaces.Get(ctx, "app", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("finalized terminating namespace: %v, want NotFound", err)
	}
}
