package apiserver

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

func seedReplicaSet(name string, replicas int32) *appsv1.ReplicaSet {
	labels := map[string]string{"app": name}
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "nginx", Image: "nginx", Ports: []corev1.ContainerPort{{ContainerPort: 80}},
				}}},
			},
		},
	}
}

// event is what an informer handler saw.
type event struct {
	kind string
	name string
	obj  any
}

func recordEvents(t *testing.T, inf cache.SharedIndexInformer) <-chan event {
	t.Helper()
	ch := make(chan event, 100)
	name := func(obj any) string {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		m, err := metaAccessor(obj)
		if err != nil {
			return "?"
		}
		return m.GetName()
	}
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { ch <- event{"add", name(obj), obj} },
		UpdateFunc: func(_, obj any) { ch <- event{"update", name(obj), obj} },
		DeleteFunc: func(obj any) { ch <- event{"delete", name(obj), obj} },
	})
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func metaAccessor(obj any) (metav1.Object, error) {
	if m, ok := obj.(metav1.Object); ok {
		return m, nil
	}
	return nil, apierrors.NewBadRequest("not an object")
}

func waitEvent(t *testing.T, ch <-chan event, kind, name string) event {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case ev := <-ch:
			if ev.kind == kind && ev.name == name {
				return ev
			}
		case <-deadline:
			t.Fatalf("informer did not see %s of %s", kind, name)
		}
	}
}

func runClientGo(t *testing.T, cfg *rest.Config) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rsClient := cs.AppsV1().ReplicaSets("default")

	created, err := rsClient.Create(ctx, seedReplicaSet("cg-replicaset", 2), metav1.CreateOptions{FieldManager: "kubectl-create", FieldValidation: "Strict"})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if created.UID == "" || created.ResourceVersion == "" || created.Spec.Template.Spec.Containers[0].ImagePullPolicy != corev1.PullAlways {
		t.Errorf("created = %+v", created)
	}
	list, err := rsClient.List(ctx, metav1.ListOptions{LabelSelector: "app=cg-replicaset"})
	if err != nil || len(list.Items) != 1 || list.ResourceVersion == "" {
		t.Fatalf("list: %v %+v", err, list)
	}
	_, err = rsClient.Create(ctx, seedReplicaSet("cg-replicaset", 2), metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		t.Errorf("second create: %v", err)
	}
	stale := created.DeepCopy()
	stale.Spec.Replicas = ptrTo(int32(1))
	if _, err := rsClient.Update(ctx, stale, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update: %v", err)
	}
	if _, err := rsClient.Update(ctx, stale, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Errorf("stale update: %v", err)
	}

	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace("default"))
	inf := factory.Apps().V1().ReplicaSets().Informer()
	events := recordEvents(t, inf)
	factory.Start(ctx.Done())
	defer func() { cancel(); factory.Shutdown() }()
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("informer did not sync")
	}
	waitEvent(t, events, "add", "cg-replicaset")

	if _, err := rsClient.Create(ctx, seedReplicaSet("second", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, events, "add", "second")

	scale, err := rsClient.GetScale(ctx, "second", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get scale: %v", err)
	}
	scale.Spec.Replicas = 3
	if _, err := rsClient.UpdateScale(ctx, "second", scale, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update scale: %v", err)
	}
	ev := waitEvent(t, events, "update", "second")
	if rs := ev.obj.(*appsv1.ReplicaSet); *rs.Spec.Replicas != 3 {
		t.Errorf("informer saw replicas %d", *rs.Spec.Replicas)
	}

	if err := rsClient.Delete(ctx, "second", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	waitEvent(t, events, "delete", "second")

	// The scheduler's path: create a pod, bind it.
	pods := cs.CoreV1().Pods("default")
	pod, err := pods.Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "my-replicaset-"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "nginx", Image: "nginx"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = pods.Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: "node-1"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("bind: %v", err)
	}
	bound, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil || bound.Spec.NodeName != "node-1" {
		t.Errorf("bound pod: %v %q", err, bound.Spec.NodeName)
	}
	// The node agent's filtered view.
	nodePods, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=node-1"})
	if err != nil || len(nodePods.Items) != 1 {
		t.Errorf("pods on node-1: %v %d", err, len(nodePods.Items))
	}

	// Discovery as kubectl and the garbage collector read it (aggregated).
	_, resources, err := cs.Discovery().ServerGroupsAndResources()
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	found := false
	for _, rl := range resources {
		for _, r := range rl.APIResources {
			if rl.GroupVersion == "apps/v1" && r.Name == "replicasets" && len(r.ShortNames) == 1 && r.ShortNames[0] == "rs" {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("discovery lacks apps/v1 replicasets: %+v", resources)
	}
}

func TestClientGoJSON(t *testing.T) {
	s := newTestServer(t)
	runClientGo(t, s.restConfig())
}

func TestClientGoProtobuf(t *testing.T) {
	s := newTestServer(t)
	cfg := s.restConfig()
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	runClientGo(t, cfg)
}

// TestMetadataInformer is how a garbage collector watches: PartialObjectMetadata.
func TestMetadataInformer(t *testing.T) {
	s := newTestServer(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	mc, err := metadata.NewForConfig(s.restConfig())
	if err != nil {
		t.Fatal(err)
	}
	createRS(t, s, "web")
	gvr := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "replicasets"}
	factory := metadatainformer.NewSharedInformerFactory(mc, 0)
	inf := factory.ForResource(gvr).Informer()
	events := recordEvents(t, inf)
	factory.Start(ctx.Done())
	defer func() { cancel(); factory.Shutdown() }()
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("metadata informer did not sync")
	}
	ev := waitEvent(t, events, "add", "web")
	if p, ok := ev.obj.(*metav1.PartialObjectMetadata); !ok || p.UID == "" {
		t.Errorf("metadata informer object %T %+v", ev.obj, ev.obj)
	}
	createRS(t, s, "api")
	waitEvent(t, events, "add", "api")
	if err := mc.Resource(gvr).Namespace("default").Delete(ctx, "api", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, events, "delete", "api")
}
