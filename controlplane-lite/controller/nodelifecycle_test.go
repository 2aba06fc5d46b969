package controller

import (
	"context"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"
)

type nodeFixture struct {
	client  *fake.Clientset
	factory informers.SharedInformerFactory
	c       *nodeLifecycle
	now     time.Time
	ctx     context.Context
}

func newNodeFixture(t *testing.T, objs ...runtime.Object) *nodeFixture {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	client := newClient(objs...)
	factory := informers.NewSharedInformerFactory(client, 0)
	f := &nodeFixture{client: client, factory: factory, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), ctx: ctx}
	f.c = newNodeLifecycle(client, factory, record.NewFakeRecorder(100))
	f.c.now = func() time.Time { return f.now }
	for _, obj := range objs {
		var err error
		if lease, ok := obj.(*coordinationv1.Lease); ok {
			err = factory.Coordination().V1().Leases().Informer().GetIndexer().Add(lease)
		} else {
			addToIndexer(t, factory, obj)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	client.ClearActions()
	return f
}

// refresh copies what the fake apiserver holds into the informer caches.
func (f *nodeFixture) refresh(t *testing.T) {
	t.Helper()
	nodes, _ := f.client.CoreV1().Nodes().List(f.ctx, metav1.ListOptions{})
	for i := range nodes.Items {
		if err := f.factory.Core().V1().Nodes().Informer().GetIndexer().Update(&nodes.Items[i]); err != nil {
			t.Fatal(err)
		}
	}
	pods, _ := f.client.CoreV1().Pods("").List(f.ctx, metav1.ListOptions{})
	indexer := f.factory.Core().V1().Pods().Informer().GetIndexer()
	for _, obj := range indexer.List() {
		_ = indexer.Delete(obj)
	}
	for i := range pods.Items {
		if err := indexer.Add(&pods.Items[i]); err != nil {
			t.Fatal(err)
		}
	}
}

func (f *nodeFixture) monitor(t *testing.T) {
	t.Helper()
	if err := f.c.monitor(f.ctx); err != nil {
		t.Fatal(err)
	}
}

func readyNode(name string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: "node-uid"},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
		}}},
	}
}

func tolerating(seconds *int64) podOption {
	return func(p *corev1.Pod) {
		p.Spec.Tolerations = []corev1.Toleration{{
			Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists,
			Effect: corev1.TaintEffectNoExecute, TolerationSeconds: seconds,
		}}
	}
}

func TestNodeLifecycleUnreachableNode(t *testing.T) {
	f := newNodeFixture(t, readyNode("n1"),
		newPod("default-toleration", onNode("n1"), running(time.Now()), tolerating(ptr.To[int64](300))),
		newPod("forever", onNode("n1"), running(time.Now()), tolerating(nil)),
		newPod("intolerant", onNode("n1"), running(time.Now())),
		newPod("elsewhere", onNode("n2"), running(time.Now())),
	)
	f.monitor(t) // first sight: a full grace period starts
	f.now = f.now.Add(nodeMonitorGracePeriod)
	f.monitor(t)
	if n := len(f.client.Actions()); n != 0 {
		t.Fatalf("acted within the grace period: %v", f.client.Actions())
	}

	f.now = f.now.Add(time.Second)
	f.monitor(t)
	node, err := f.client.CoreV1().Nodes().Get(f.ctx, "n1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c := nodeCondition(node, corev1.NodeReady); c.Status != corev1.ConditionUnknown || c.Reason != "NodeStatusUnknown" {
		t.Errorf("Ready = %+v", c)
	}
	if len(node.Spec.Taints) != 2 || node.Spec.Taints[1].Effect != corev1.TaintEffectNoExecute ||
		node.Spec.Taints[1].TimeAdded == nil || !node.Spec.Taints[1].TimeAdded.Time.Equal(f.now) {
		t.Errorf("taints = %+v", node.Spec.Taints)
	}
	for _, name := range []string{"default-toleration", "forever", "intolerant"} {
		pod, _ := f.client.CoreV1().Pods("default").Get(f.ctx, name, metav1.GetOptions{})
		if podReady(pod) {
			t.Errorf("pod %s still ready on an unreachable node", name)
		}
	}
	if pod, _ := f.client.CoreV1().Pods("default").Get(f.ctx, "elsewhere", metav1.GetOptions{}); !podReady(pod) {
		t.Error("pod on another node marked not ready")
	}

	// The caches see the taint: the pod that does not tolerate it goes at once.
	f.refresh(t)
	f.client.ClearActions()
	f.now = f.now.Add(nodeMonitorPeriod)
	f.monitor(t)
	if d := deletedNames(f.client, "pods"); len(d) != 1 || d[0] != "intolerant" {
		t.Fatalf("evicted %v, want intolerant", d)
	}
	// After tolerationSeconds the default-tolerating pod follows; "forever" stays.
	f.refresh(t)
	f.client.ClearActions()
	f.now = f.now.Add(300 * time.Second)
	f.monitor(t)
	if d := deletedNames(f.client, "pods"); len(d) != 1 || d[0] != "default-toleration" {
		t.Fatalf("evicted %v, want default-toleration", d)
	}
}

func TestNodeLifecycleLeaseKeepsNodeAlive(t *testing.T) {
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", Namespace: corev1.NamespaceNodeLease},
		Spec:       coordinationv1.LeaseSpec{RenewTime: &metav1.MicroTime{Time: time.Now()}},
	}
	f := newNodeFixture(t, readyNode("n1"), lease)
	f.monitor(t)
	for range 5 {
		f.now = f.now.Add(40 * time.Second)
		renewed := lease.DeepCopy()
		renewed.Spec.RenewTime = &metav1.MicroTime{Time: f.now}
		if err := f.factory.Coordination().V1().Leases().Informer().GetIndexer().Update(renewed); err != nil {
			t.Fatal(err)
		}
		f.monitor(t)
	}
	if n := len(f.client.Actions()); n != 0 {
		t.Errorf("acted on a node renewing its lease: %v", f.client.Actions())
	}
}

func TestNodeLifecycleRemovesTaintsWhenNodeRecovers(t *testing.T) {
	node := readyNode("n1")
	node.Spec.Taints = []corev1.Taint{
		{Key: "dedicated", Value: "x", Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute},
	}
	f := newNodeFixture(t, node)
	f.monitor(t)
	stored, err := f.client.CoreV1().Nodes().Get(f.ctx, "n1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(stored.Spec.Taints) != 1 || stored.Spec.Taints[0].Key != "dedicated" {
		t.Errorf("taints = %+v, want only the user's", stored.Spec.Taints)
	}
}
