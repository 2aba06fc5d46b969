package apiserver

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/klog/v2"

	"github.com/skiff-sh/skiff/controlplane-lite/apiserver/storage"
)

// defaultNamespaces are the namespaces kube-apiserver creates at start.
func defaultNamespaces() []string {
	return []string{metav1.NamespaceDefault, metav1.NamespaceSystem, metav1.NamespacePublic, corev1.NamespaceNodeLease}
}

// EnsureDefaultNamespaces creates default, kube-system, kube-public and
// kube-node-lease in store (the namespaces Store) unless they exist, filled as
// kube-apiserver's namespace strategy would fill them.
func EnsureDefaultNamespaces(ctx context.Context, store storage.Store) error {
	logger := klog.FromContext(ctx)
	for _, name := range defaultNamespaces() {
		_, err := store.Get(ctx, "", name)
		if err == nil {
			continue
		}
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("look up namespace %s: %w", name, err)
		}
		_, err = store.Create(ctx, newNamespace(name))
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create namespace %s: %w", name, err)
		}
		if err == nil {
			logger.V(2).Info("Created namespace", "namespace", name)
		}
	}
	return nil
}

func newNamespace(name string) *corev1.Namespace {
	return &corev1.Namespace{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{
			Name:              name,
			UID:               uuid.NewUUID(),
			CreationTimestamp: metav1.NewTime(time.Now().Truncate(time.Second)),
			Labels:            map[string]string{corev1.LabelMetadataName: name},
		},
		Spec:   corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{corev1.FinalizerKubernetes}},
		Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive},
	}
}

// admitNamespaceDelete is the delete half of kube's NamespaceLifecycle admission: the
// namespaces the apiserver keeps for itself cannot be deleted.
func admitNamespaceDelete(res *resource, name string) error {
	if res.def.GroupResource != namespacesGR() {
		return nil
	}
	switch name {
	case metav1.NamespaceDefault, metav1.NamespaceSystem, metav1.NamespacePublic:
		return apierrors.NewForbidden(namespacesGR(), name, errors.New("this namespace may not be deleted"))
	}
	return nil
}
