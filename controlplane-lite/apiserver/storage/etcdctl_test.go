package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"

	"github.com/skiff-sh/skiff/controlplane-lite/etcd/etcdtest"
)

// The seed's last check: etcdctl shows the ReplicaSet under kube-apiserver's key, as a
// protobuf value behind the k8s\0 envelope.
func TestEtcdctlSeesTheSeedsReplicaSet(t *testing.T) {
	etcdctl, err := exec.LookPath("etcdctl")
	if err != nil {
		t.Skip("etcdctl not installed (Debian package etcd-client)")
	}
	srv, client := etcdtest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := New(ctx, client, Resource{
		GroupResource:    schema.GroupResource{Group: "apps", Resource: "replicasets"},
		GroupVersionKind: appsv1.SchemeGroupVersion.WithKind("ReplicaSet"),
		Prefix:           "/registry/replicasets",
		Namespaced:       true,
		NewFunc:          func() runtime.Object { return &appsv1.ReplicaSet{} },
		NewListFunc:      func() runtime.Object { return &appsv1.ReplicaSetList{} },
		AttrFunc: func(obj runtime.Object) (labels.Set, fields.Set, error) {
			rs := obj.(*appsv1.ReplicaSet)
			return rs.Labels, fields.Set{"metadata.name": rs.Name, "metadata.namespace": rs.Namespace}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	sel := map[string]string{"app": "nginx"}
	created, err := s.Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "my-replicaset"},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "nginx", Image: "nginx"}}},
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}

	out, err := exec.Command(etcdctl, "--endpoints="+srv.Endpoints()[0], "get", "/registry/replicasets/default/my-replicaset", "-w", "json").Output()
	if err != nil {
		t.Fatalf("etcdctl: %v", err)
	}
	var resp struct {
		Kvs []struct {
			Key         []byte `json:"key"`
			Value       []byte `json:"value"`
			ModRevision int64  `json:"mod_revision"`
		} `json:"kvs"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("etcdctl output %s: %v", out, err)
	}
	if len(resp.Kvs) != 1 {
		t.Fatalf("etcdctl found %d keys", len(resp.Kvs))
	}
	if v := resp.Kvs[0].Value; !bytes.HasPrefix(v, []byte("k8s\x00")) || !bytes.Contains(v, []byte("apps/v1")) || !bytes.Contains(v, []byte("ReplicaSet")) {
		t.Errorf("etcdctl value %q, want the k8s\\0 protobuf envelope of an apps/v1 ReplicaSet", v[:min(40, len(v))])
	}
	if rv := created.(*appsv1.ReplicaSet).ResourceVersion; rv != formatRV(resp.Kvs[0].ModRevision) {
		t.Errorf("Create's resourceVersion %s, etcd's mod_revision %d", rv, resp.Kvs[0].ModRevision)
	}
}
