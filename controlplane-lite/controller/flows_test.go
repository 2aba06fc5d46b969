package controller

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// ownedConfigMap is a ConfigMap owned by rs, with extra finalizers.
func ownedConfigMap(name string, owner metav1.Object, finalizers ...string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		Name: name, Namespace: owner.GetNamespace(), Finalizers: finalizers,
		OwnerReferences: []metav1.OwnerReference{{
			APIVersion: "apps/v1", Kind: "ReplicaSet", Name: owner.GetName(), UID: owner.GetUID(),
			BlockOwnerDeletion: ptr.To(true),
		}},
	}}
}

func createOwnerAndConfigMap(t *testing.T, client kubernetes.Interface, name string, finalizers ...string) (metav1.Object, *corev1.ConfigMap) {
	t.Helper()
	ctx := context.Background()
	rs := newReplicaSet(name, 0)
	rs.UID, rs.ResourceVersion = "", ""
	created, err := client.AppsV1().ReplicaSets("default").Create(ctx, rs, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm, err := client.CoreV1().ConfigMaps("default").Create(ctx, ownedConfigMap(name+"-cm", created, finalizers...), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return created, cm
}

// TestGCCollectsEveryServedKind: the collector manages kinds it has no code for (a
// ConfigMap owned by a ReplicaSet) in all three propagation policies.
func TestGCCollectsEveryServedKind(t *testing.T) {
	client, _ := runManager(t, startAPIServer(t))
	ctx := context.Background()
	rss, cms := client.AppsV1().ReplicaSets("default"), client.CoreV1().ConfigMaps("default")

	t.Run("background", func(t *testing.T) {
		rs, cm := createOwnerAndConfigMap(t, client, "bg")
		if err := rss.Delete(ctx, rs.GetName(), metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the configmap collected", func(ctx context.Context) (bool, error) {
			_, err := cms.Get(ctx, cm.Name, metav1.GetOptions{})
			return gone(err)
		})
	})

	t.Run("foreground", func(t *testing.T) {
		// The configmap's own finalizer holds it, and so its owner.
		rs, cm := createOwnerAndConfigMap(t, client, "fg", "example.com/hold")
		if err := rss.Delete(ctx, rs.GetName(), metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationForeground)}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the configmap marked for deletion", func(ctx context.Context) (bool, error) {
			got, err := cms.Get(ctx, cm.Name, metav1.GetOptions{})
			return err == nil && got.DeletionTimestamp != nil, err
		})
		if _, err := rss.Get(ctx, rs.GetName(), metav1.GetOptions{}); err != nil {
			t.Fatalf("the owner went before its blocking dependent: %v", err)
		}
		_, err := cms.Patch(ctx, cm.Name, types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "the owner deleted after its dependent", func(ctx context.Context) (bool, error) {
			_, err := rss.Get(ctx, rs.GetName(), metav1.GetOptions{})
			return gone(err)
		})
	})

	t.Run("orphan", func(t *testing.T) {
		rs, cm := createOwnerAndConfigMap(t, client, "orphan")
		if err := rss.Delete(ctx, rs.GetName(), metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationOrphan)}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the owner deleted", func(ctx context.Context) (bool, error) {
			_, err := rss.Get(ctx, rs.GetName(), metav1.GetOptions{})
			return gone(err)
		})
		got, err := cms.Get(ctx, cm.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("the orphaned configmap was deleted: %v", err)
		}
		if len(got.OwnerReferences) != 0 {
			t.Errorf("the orphan still names its owner: %v", got.OwnerReferences)
		}
	})
}

// TestNamespaceDeletionRemovesEverything: deleting a namespace removes every kind of
// object in it, then the namespace; a namespace of the same name starts empty.
func TestNamespaceDeletionRemovesEverything(t *testing.T) {
	client, _ := runManager(t, startAPIServer(t))
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}}
	if _, err := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"}, Data: map[string]string{"a": "b"}}
	if _, err := client.CoreV1().ConfigMaps("app").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rs := newReplicaSet("web", 1)
	rs.Namespace, rs.UID, rs.ResourceVersion = "app", "", ""
	if _, err := client.AppsV1().ReplicaSets("app").Create(ctx, rs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := client.CoreV1().Namespaces().Delete(ctx, "app", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the namespace removed", func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().Namespaces().Get(ctx, "app", metav1.GetOptions{})
		return gone(err)
	})
	if _, err := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cmList, err := client.CoreV1().ConfigMaps("app").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rsList, err := client.AppsV1().ReplicaSets("app").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pods, err := client.CoreV1().Pods("app").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cmList.Items)+len(rsList.Items)+len(pods.Items) != 0 {
		t.Errorf("the recreated namespace holds %d configmaps, %d replicasets, %d pods of the old one",
			len(cmList.Items), len(rsList.Items), len(pods.Items))
	}
}
