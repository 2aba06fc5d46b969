package storage

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-sh/skiff/controlplane-lite/etcd/etcdtest"
)

// Events expire like kube-apiserver's (--event-ttl): etcd deletes them, and watchers see
// the DELETED.
func TestTTLObjectsExpire(t *testing.T) {
	_, client := etcdtest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := New(ctx, client, Resource{
		GroupResource:    schema.GroupResource{Resource: "events"},
		GroupVersionKind: corev1.SchemeGroupVersion.WithKind("Event"),
		Prefix:           "/registry/events",
		Namespaced:       true,
		NewFunc:          func() runtime.Object { return &corev1.Event{} },
		NewListFunc:      func() runtime.Object { return &corev1.EventList{} },
		AttrFunc: func(obj runtime.Object) (labels.Set, fields.Set, error) {
			e := obj.(*corev1.Event)
			return e.Labels, fields.Set{"metadata.name": e.Name, "metadata.namespace": e.Namespace}, nil
		},
		TTL: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Watch(ctx, "default", ListOptions{ResourceVersion: "0"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, err := s.Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "e1"}, Reason: "Scheduled"}); err != nil {
		t.Fatal(err)
	}
	resp, err := client.Get(ctx, "/registry/events/default/e1")
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease == 0 {
		t.Fatalf("event stored without a lease: %v %v", resp, err)
	}

	timeout := time.After(15 * time.Second)
	for done := false; !done; {
		select {
		case ev := <-w.ResultChan():
			done = ev.Type == watch.Deleted
		case <-timeout:
			t.Fatal("the event did not expire")
		}
	}
	if _, err := s.Get(ctx, "default", "e1"); !apierrors.IsNotFound(err) {
		t.Errorf("expired event: %v, want NotFound", err)
	}
}
