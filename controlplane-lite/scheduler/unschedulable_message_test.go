package scheduler

import (
	"math/rand/v2"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

// The Unschedulable message has kube-scheduler's shape: filter reasons counted per node,
// grouped and sorted, then what preemption made of each node.
func TestUnschedulableMessage(t *testing.T) {
	hostPort := func(p *corev1.Pod) {
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080}}
	}
	cases := []struct {
		name  string
		nodes []*corev1.Node
		bound []*corev1.Pod
		pod   *corev1.Pod
		want  string
	}{
		{
			name: "taints and cpu",
			nodes: []*corev1.Node{
				newNode("a", "1", "4Gi", tainted("k", "v", corev1.TaintEffectNoSchedule)),
				newNode("b", "1", "4Gi", tainted("k", "v", corev1.TaintEffectNoSchedule)),
				newNode("c", "4", "4Gi"),
			},
			bound: []*corev1.Pod{newPod("hog", requesting("3500m", ""), boundTo("c"))},
			pod:   newPod("p", requesting("1", "")),
			want: "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {k: v}. " +
				"preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling.",
		},
		{
			name:  "request above allocatable: preemption cannot help",
			nodes: []*corev1.Node{newNode("a", "1", "1Gi"), newNode("b", "2", "1Gi")},
			pod:   newPod("p", requesting("3", "2Gi")),
			want: "0/2 nodes are available: 2 Insufficient cpu, 2 Insufficient memory. " +
				"preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.",
		},
		{
			name: "cordoned, selector and ports",
			nodes: []*corev1.Node{
				newNode("a", "4", "4Gi", func(n *corev1.Node) { n.Spec.Unschedulable = true }),
				newNode("b", "4", "4Gi", func(n *corev1.Node) { n.Labels = map[string]string{"disk": "hdd"} }),
				newNode("c", "4", "4Gi", func(n *corev1.Node) { n.Labels = map[string]string{"disk": "ssd"} }),
			},
			bound: []*corev1.Pod{newPod("web", hostPort, boundTo("c"))},
			pod: newPod("p", hostPort, func(p *corev1.Pod) {
				p.Spec.NodeSelector = map[string]string{"disk": "ssd"}
			}),
			want: "0/3 nodes are available: 1 node(s) didn't have free ports for the requested pod ports, " +
				"1 node(s) didn't match Pod's node affinity/selector, 1 node(s) were unschedulable. " +
				"preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling.",
		},
		{
			name:  "preemptionPolicy Never",
			nodes: []*corev1.Node{newNode("a", "1", "1Gi", notReady)},
			pod: newPod("p", func(p *corev1.Pod) {
				p.Spec.PreemptionPolicy = ptr.To(corev1.PreemptNever)
			}),
			want: "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }. " +
				"preemption: not eligible due to preemptionPolicy=Never.",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &Scheduler{cache: newSchedCache(time.Now), rand: rand.New(rand.NewPCG(1, 2))}
			for _, n := range tc.nodes {
				s.cache.setNode(n)
			}
			for _, p := range tc.bound {
				s.cache.setPod(p)
			}
			node, err := s.selectAndAssume(tc.pod)
			if err == nil {
				t.Fatalf("scheduled to %s, want a fit error", node)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("message\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}
