package storage

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-sh/skiff/controlplane-lite/etcd/etcdtest"
)

func podResource() Resource {
	return Resource{
		GroupResource:    schema.GroupResource{Resource: "pods"},
		GroupVersionKind: corev1.SchemeGroupVersion.WithKind("Pod"),
		Prefix:           "/registry/pods",
		Namespaced:       true,
		NewFunc:          func() runtime.Object { return &corev1.Pod{} },
		NewListFunc:      func() runtime.Object { return &corev1.PodList{} },
		AttrFunc: func(obj runtime.Object) (labels.Set, fields.Set, error) {
			pod := obj.(*corev1.Pod)
			return labels.Set(pod.Labels), fields.Set{
				"metadata.name":      pod.Name,
				"metadata.namespace": pod.Namespace,
				"spec.nodeName":      pod.Spec.NodeName,
				"status.phase":       string(pod.Status.Phase),
			}, nil
		},
	}
}

// testStore starts a private etcd and a pod Store on it with opts.
func testStore(t testing.TB, opts options) (*store, *clientv3.Client) {
	t.Helper()
	_, client := etcdtest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := newStore(ctx, client, podResource(), opts)
	if err != nil {
		t.Fatalf("newStore: %v", err)
	}
	return s, client
}

func newPod(namespace, name, node string, lbls map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace,
			Name:      name,
			UID:       types.UID("uid-" + namespace + "-" + name),
			Labels:    lbls,
		},
		Spec: corev1.PodSpec{
			NodeName:   node,
			Containers: []corev1.Container{{Name: "nginx", Image: "nginx"}},
		},
	}
}

func mustCreate(t testing.TB, s Store, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	out, err := s.Create(context.Background(), pod)
	if err != nil {
		t.Fatalf("create %s/%s: %v", pod.Namespace, pod.Name, err)
	}
	return out.(*corev1.Pod)
}

// mustUpdate applies mutate to the stored pod.
func mustUpdate(t testing.TB, s Store, namespace, name string, mutate func(*corev1.Pod)) *corev1.Pod {
	t.Helper()
	out, err := s.GuaranteedUpdate(context.Background(), namespace, name, func(cur runtime.Object) (runtime.Object, error) {
		pod := cur.(*corev1.Pod)
		mutate(pod)
		return pod, nil
	})
	if err != nil {
		t.Fatalf("update %s/%s: %v", namespace, name, err)
	}
	return out.(*corev1.Pod)
}

func nextEvent(t testing.TB, w watch.Interface) watch.Event {
	t.Helper()
	select {
	case ev, ok := <-w.ResultChan():
		if !ok {
			t.Fatal("watch closed, want an event")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no watch event within 5s")
	}
	return watch.Event{}
}

// nextNonBookmark skips bookmarks.
func nextNonBookmark(t testing.TB, w watch.Interface) watch.Event {
	t.Helper()
	for {
		if ev := nextEvent(t, w); ev.Type != watch.Bookmark {
			return ev
		}
	}
}

func expectEvent(t testing.TB, w watch.Interface, typ watch.EventType, name, rv string) *corev1.Pod {
	t.Helper()
	ev := nextNonBookmark(t, w)
	pod, ok := ev.Object.(*corev1.Pod)
	if ev.Type != typ || !ok || pod.Name != name || (rv != "" && pod.ResourceVersion != rv) {
		t.Fatalf("got %s %T %s, want %s pod %s rv %q", ev.Type, ev.Object, describe(ev.Object), typ, name, rv)
	}
	return pod
}

func describe(obj runtime.Object) string {
	if pod, ok := obj.(*corev1.Pod); ok {
		return pod.Namespace + "/" + pod.Name + "@" + pod.ResourceVersion
	}
	if st, ok := obj.(*metav1.Status); ok {
		return st.Message
	}
	return "?"
}

func expectNoEvent(t testing.TB, w watch.Interface, within time.Duration) {
	t.Helper()
	timeout := time.After(within)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("watch closed unexpectedly")
			}
			if ev.Type == watch.Bookmark {
				continue
			}
			t.Fatalf("unexpected %s event %s", ev.Type, describe(ev.Object))
		case <-timeout:
			return
		}
	}
}

func startWatch(t testing.TB, s Store, namespace string, opts ListOptions) watch.Interface {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w, err := s.Watch(ctx, namespace, opts)
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	t.Cleanup(w.Stop)
	return w
}

func fastOptions() options {
	o := defaultOptions()
	o.bookmarkInterval = 50 * time.Millisecond
	return o
}

// waitForCache waits until the store's watch cache has seen rv.
func waitForCache(t testing.TB, s *store, rv string) {
	t.Helper()
	n, err := parseRV(rv)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cache.waitFresh(context.Background(), n); err != nil {
		t.Fatalf("cache did not reach %s: %v", rv, err)
	}
}
