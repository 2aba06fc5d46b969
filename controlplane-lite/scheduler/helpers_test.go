package scheduler

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
)

// fakeAPIServer is a fake clientset whose pods/binding subresource behaves like the
// apiserver's: it sets spec.nodeName (when apply is true) and records every binding.
type fakeAPIServer struct {
	*fake.Clientset
	mu       sync.Mutex
	bindings map[string]string // pod name -> node
	apply    bool
}

func newFakeAPIServer(tb testing.TB, objs ...runtime.Object) *fakeAPIServer {
	tb.Helper()
	return wrapFake(fake.NewClientset(objs...))
}

func wrapFake(cs *fake.Clientset) *fakeAPIServer {
	f := &fakeAPIServer{Clientset: cs, bindings: map[string]string{}, apply: true}
	f.PrependReactor("create", "pods", func(action clienttesting.Action) (bool, runtime.Object, error) {
		if action.GetSubresource() != "binding" {
			return false, nil, nil
		}
		b := action.(clienttesting.CreateAction).GetObject().(*corev1.Binding)
		f.mu.Lock()
		f.bindings[b.Name] = b.Target.Name
		apply := f.apply
		f.mu.Unlock()
		if !apply {
			return true, b, nil
		}
		gvr := corev1.SchemeGroupVersion.WithResource("pods")
		obj, err := f.Tracker().Get(gvr, b.Namespace, b.Name)
		if err != nil {
			return true, nil, err
		}
		pod := obj.(*corev1.Pod).DeepCopy()
		if pod.Spec.NodeName != "" {
			return true, nil, fmt.Errorf("pod %s is already assigned to node %q", pod.Name, pod.Spec.NodeName)
		}
		pod.Spec.NodeName = b.Target.Name
		return true, b, f.Tracker().Update(gvr, pod, b.Namespace)
	})
	return f
}

func (f *fakeAPIServer) boundTo(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bindings[name]
}

func (f *fakeAPIServer) numBindings() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.bindings)
}

type nodeOption func(*corev1.Node)

func newNode(name, cpu, memory string, opts ...nodeOption) *corev1.Node {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}},
		Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse(cpu),
				corev1.ResourceMemory: resource.MustParse(memory),
				corev1.ResourcePods:   resource.MustParse("110"),
			},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
	for _, o := range opts {
		o(n)
	}
	return n
}

func tainted(key, value string, effect corev1.TaintEffect) nodeOption {
	return func(n *corev1.Node) {
		n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: key, Value: value, Effect: effect})
	}
}

func notReady(n *corev1.Node) {
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionFalse}}
}

type podOption func(*corev1.Pod)

func newPod(name string, opts ...podOption) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name + "-uid")},
		Spec: corev1.PodSpec{
			SchedulerName: DefaultSchedulerName,
			Containers:    []corev1.Container{{Name: "c", Image: "nginx"}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodPending},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func requesting(cpu, memory string) podOption {
	return func(p *corev1.Pod) {
		req := corev1.ResourceList{}
		if cpu != "" {
			req[corev1.ResourceCPU] = resource.MustParse(cpu)
		}
		if memory != "" {
			req[corev1.ResourceMemory] = resource.MustParse(memory)
		}
		p.Spec.Containers[0].Resources.Requests = req
	}
}

func boundTo(node string) podOption { return func(p *corev1.Pod) { p.Spec.NodeName = node } }

// runScheduler runs a Scheduler until the test ends.
func runScheduler(tb testing.TB, ctx context.Context, client *fakeAPIServer) *Scheduler {
	tb.Helper()
	s, err := New(Config{Client: client})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Run: %v", err)
		}
	})
	return s
}

func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
