package scheduler

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2/ktesting"
)

func TestNewDefaultsName(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("New accepted a config without a client")
	}
	s, err := New(Config{Client: fake.NewClientset()})
	if err != nil {
		t.Fatal(err)
	}
	if s.name != "default-scheduler" {
		t.Errorf("name = %q", s.name)
	}
}

func findEvent(t *testing.T, ctx context.Context, client *fakeAPIServer, reason, message string) bool {
	t.Helper()
	events, err := client.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		if e.Reason == reason && e.Message == message && e.Source.Component == "default-scheduler" {
			return true
		}
	}
	return false
}

func TestSchedulerBindsToTheFittingNode(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	client := newFakeAPIServer(t,
		newNode("small", "1", "4Gi"),
		newNode("tainted", "8", "16Gi", tainted("dedicated", "gpu", corev1.TaintEffectNoSchedule)),
		newNode("not-ready", "8", "16Gi", notReady),
		newNode("cordoned", "8", "16Gi", func(n *corev1.Node) { n.Spec.Unschedulable = true }),
		newNode("fits", "4", "8Gi"),
		newPod("x", requesting("2", "1Gi")),
	)
	runScheduler(t, ctx, client)
	eventually(t, "binding", func() bool { return client.boundTo("x") != "" })
	if got := client.boundTo("x"); got != "fits" {
		t.Fatalf("bound to %q, want fits", got)
	}
	eventually(t, "Scheduled event", func() bool {
		return findEvent(t, ctx, client, "Scheduled", "Successfully assigned default/x to fits")
	})
}

func TestSchedulerHonoursTolerationsAndSelectors(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	client := newFakeAPIServer(t,
		newNode("plain", "8", "16Gi"),
		newNode("gpu", "1", "1Gi", tainted("dedicated", "gpu", corev1.TaintEffectNoSchedule),
			func(n *corev1.Node) { n.Labels["accelerator"] = "yes" }),
		newPod("x", func(p *corev1.Pod) {
			p.Spec.NodeSelector = map[string]string{"accelerator": "yes"}
			p.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "gpu"}}
		}),
	)
	runScheduler(t, ctx, client)
	eventually(t, "binding", func() bool { return client.boundTo("x") != "" })
	if got := client.boundTo("x"); got != "gpu" {
		t.Fatalf("bound to %q, want gpu", got)
	}
}

func TestSchedulerReportsUnschedulable(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	client := newFakeAPIServer(t,
		newNode("tainted", "8", "16Gi", tainted("dedicated", "gpu", corev1.TaintEffectNoSchedule)),
		newNode("small", "1", "4Gi"),
		newPod("x", requesting("2", "")),
	)
	runScheduler(t, ctx, client)
	const want = "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {dedicated: gpu}. " +
		"preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
	var cond *corev1.PodCondition
	eventually(t, "PodScheduled=False", func() bool {
		pod, err := client.CoreV1().Pods("default").Get(ctx, "x", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range pod.Status.Conditions {
			if pod.Status.Conditions[i].Type == corev1.PodScheduled {
				cond = &pod.Status.Conditions[i]
			}
		}
		return cond != nil
	})
	if cond.Status != corev1.ConditionFalse || cond.Reason != "Unschedulable" || cond.Message != want {
		t.Fatalf("condition = %+v, want message %q", cond, want)
	}
	eventually(t, "FailedScheduling event", func() bool {
		return findEvent(t, ctx, client, "FailedScheduling", want)
	})
	if client.numBindings() != 0 {
		t.Fatal("bound although nothing fits")
	}

	// A node that fits joins: the pod is retried and bound.
	if _, err := client.CoreV1().Nodes().Create(ctx, newNode("big", "4", "8Gi"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "binding after the new node", func() bool { return client.boundTo("x") == "big" })
}

func TestSchedulerLeastAllocated(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	client := newFakeAPIServer(t,
		newNode("busy", "4", "8Gi"),
		newNode("idle", "4", "8Gi"),
		newPod("existing", requesting("2", "4Gi"), boundTo("busy"), func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodRunning
		}),
		newPod("x", requesting("500m", "512Mi")),
	)
	runScheduler(t, ctx, client)
	eventually(t, "binding", func() bool { return client.boundTo("x") != "" })
	if got := client.boundTo("x"); got != "idle" {
		t.Fatalf("bound to %q, want the least allocated node", got)
	}
}

// TestSchedulerAssumesBeforeBindingIsObserved keeps the apiserver from reflecting
// bindings, so only the assume cache can keep two big pods off the same node.
func TestSchedulerAssumesBeforeBindingIsObserved(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	client := newFakeAPIServer(t, newNode("a", "4", "8Gi"), newNode("b", "4", "8Gi"))
	client.apply = false
	runScheduler(t, ctx, client)
	for _, name := range []string{"p1", "p2", "p3"} {
		if _, err := client.CoreV1().Pods("default").Create(ctx, newPod(name, requesting("3", "1Gi")), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "two bindings", func() bool { return client.numBindings() == 2 })
	if a, b := client.boundTo("p1"), client.boundTo("p2"); a == b || a == "" || b == "" {
		t.Fatalf("p1 on %q and p2 on %q", a, b)
	}
	eventually(t, "p3 unschedulable", func() bool {
		pod, _ := client.CoreV1().Pods("default").Get(ctx, "p3", metav1.GetOptions{})
		return pod != nil && len(pod.Status.Conditions) == 1 &&
			strings.Contains(pod.Status.Conditions[0].Message, "2 Insufficient cpu")
	})
}

func TestSchedulerIgnoresOtherSchedulers(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	client := newFakeAPIServer(t, newNode("a", "4", "8Gi"),
		newPod("mine"),
		newPod("theirs", func(p *corev1.Pod) { p.Spec.SchedulerName = "other" }))
	runScheduler(t, ctx, client)
	eventually(t, "binding", func() bool { return client.boundTo("mine") == "a" })
	time.Sleep(100 * time.Millisecond)
	if client.boundTo("theirs") != "" {
		t.Error("bound a pod of another scheduler")
	}
}

func TestSchedulerRetriesWhenResourcesAreFreed(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	client := newFakeAPIServer(t,
		newNode("n", "2", "4Gi"),
		newPod("hog", requesting("2", ""), boundTo("n"), func(p *corev1.Pod) { p.Status.Phase = corev1.PodRunning }),
		newPod("x", requesting("1", "")),
	)
	runScheduler(t, ctx, client)
	eventually(t, "FailedScheduling", func() bool {
		return findEvent(t, ctx, client, "FailedScheduling", "0/1 nodes are available: 1 Insufficient cpu. "+
			"preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.")
	})
	if err := client.CoreV1().Pods("default").Delete(ctx, "hog", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "binding once the hog is gone", func() bool { return client.boundTo("x") == "n" })
}
