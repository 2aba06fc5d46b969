package scheduler

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
)

func infoFor(node *corev1.Node, pods ...*corev1.Pod) *nodeInfo {
	ni := newNodeInfo()
	ni.node = node
	ni.allocatable = fromList(node.Status.Allocatable)
	for _, p := range pods {
		ni.addPod(p, 1)
	}
	return ni
}

func TestFilterReasons(t *testing.T) {
	hostPort := func(p *corev1.Pod) {
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080}}
	}
	cases := []struct {
		name string
		node *corev1.Node
		on   []*corev1.Pod
		pod  *corev1.Pod
		want []string
	}{
		{"fits", newNode("n", "1", "1Gi"), nil, newPod("p", requesting("1", "1Gi")), nil},
		{"cpu and memory", newNode("n", "1", "1Gi"), nil, newPod("p", requesting("2", "2Gi")),
			[]string{"Insufficient cpu", "Insufficient memory"}},
		{"counts pods already there", newNode("n", "2", "4Gi"), []*corev1.Pod{newPod("q", requesting("1500m", ""))},
			newPod("p", requesting("1", "")), []string{"Insufficient cpu"}},
		{"pod slots", newNode("n", "1", "1Gi", func(n *corev1.Node) {
			n.Status.Allocatable[corev1.ResourcePods] = resource.MustParse("1")
		}), []*corev1.Pod{newPod("q")}, newPod("p"), []string{"Too many pods"}},
		{"extended resource missing", newNode("n", "1", "1Gi"), nil, newPod("p", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{"example.com/gpu": resource.MustParse("1")}
		}), []string{"Insufficient example.com/gpu"}},
		{"not ready", newNode("n", "1", "1Gi", notReady), nil, newPod("p"),
			[]string{"node(s) had untolerated taint {node.kubernetes.io/not-ready: }"}},
		{"NoExecute taint", newNode("n", "1", "1Gi", tainted("k", "v", corev1.TaintEffectNoExecute)), nil, newPod("p"),
			[]string{"node(s) had untolerated taint {k: v}"}},
		{"PreferNoSchedule is no filter", newNode("n", "1", "1Gi", tainted("k", "v", corev1.TaintEffectPreferNoSchedule)),
			nil, newPod("p"), nil},
		{"tolerate everything", newNode("n", "1", "1Gi", tainted("k", "v", corev1.TaintEffectNoSchedule), notReady), nil,
			newPod("p", func(p *corev1.Pod) {
				p.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
			}), nil},
		{"cordoned", newNode("n", "1", "1Gi", func(n *corev1.Node) { n.Spec.Unschedulable = true }), nil, newPod("p"),
			[]string{"node(s) were unschedulable"}},
		{"selector", newNode("n", "1", "1Gi"), nil, newPod("p", func(p *corev1.Pod) {
			p.Spec.NodeSelector = map[string]string{"disk": "ssd"}
		}), []string{"node(s) didn't match Pod's node affinity/selector"}},
		{"affinity NotIn", newNode("n", "1", "1Gi"), nil, newPod("p", func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
					{MatchExpressions: []corev1.NodeSelectorRequirement{{
						Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"n"},
					}}},
				}},
			}}
		}), []string{"node(s) didn't match Pod's node affinity/selector"}},
		{"affinity matchFields", newNode("n", "1", "1Gi"), nil, newPod("p", func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
					{MatchFields: []corev1.NodeSelectorRequirement{{
						Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"n"},
					}}},
				}},
			}}
		}), nil},
		{"host port taken", newNode("n", "1", "1Gi"), []*corev1.Pod{newPod("q", hostPort)}, newPod("p", hostPort),
			[]string{"node(s) didn't have free ports for the requested pod ports"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := filter(newPodInfo(tc.pod), infoFor(tc.node, tc.on...))
			if len(got) != len(tc.want) {
				t.Fatalf("filter = %q, want %q", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("filter = %q, want %q", got, tc.want)
				}
			}
		})
	}
}

func TestPodRequests(t *testing.T) {
	pod := newPod("p", requesting("500m", "100Mi"))
	pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: "d", Resources: corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")},
	}})
	pod.Spec.InitContainers = []corev1.Container{
		{Name: "init", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("2"),
		}}},
		{Name: "sidecar", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways), Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("50Mi")},
		}},
	}
	got := podRequests(pod)
	// cpu: max(0.5+0.25, init 2) = 2; memory: 100Mi + 50Mi sidecar.
	if got[corev1.ResourceCPU] != 2000 || got[corev1.ResourceMemory] != 150*1024*1024 {
		t.Errorf("requests = %v", got)
	}
	cpu, mem := nonZeroRequests(newPod("empty"))
	if cpu != defaultMilliCPURequest || mem != defaultMemoryRequest {
		t.Errorf("non-zero requests of an empty pod = %d, %d", cpu, mem)
	}
}

func TestLeastAllocatedScore(t *testing.T) {
	node := newNode("n", "4", "8Gi")
	// cpu: (4000-1000-1000)*100/4000 = 50; memory: (8Gi-2Gi-2Gi)*100/8Gi = 50.
	ni := infoFor(node, newPod("q", requesting("1", "2Gi")))
	if got := leastAllocatedScore(newPodInfo(newPod("p", requesting("1", "2Gi"))), ni); got != 50 {
		t.Errorf("score = %d, want 50", got)
	}
	if got := leastAllocatedScore(newPodInfo(newPod("p", requesting("8", "2Gi"))), ni); got != 25 {
		t.Errorf("score with cpu overcommitted = %d, want 25 (memory only)", got)
	}
}

func TestFitErrorMessage(t *testing.T) {
	e := &fitError{numNodes: 3, reasons: map[string]int{"node(s) were unschedulable": 1, "Insufficient cpu": 2},
		preemption: map[string]int{preemptionNotHelpful: 1, preemptionNoVictims: 2}}
	if got, want := e.Error(), "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu. "+
		"preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
	if got := (&fitError{}).Error(); got != "no nodes available to schedule pods" {
		t.Errorf("message = %q", got)
	}
}

func TestCacheAssumeConfirmForget(t *testing.T) {
	c := newSchedCache(nil)
	c.setNode(newNode("n", "4", "8Gi"))
	pod := newPod("p", requesting("1", ""))
	c.mu.Lock()
	c.assumeLocked(pod, "n")
	c.mu.Unlock()
	if got := c.nodes["n"].requested[corev1.ResourceCPU]; got != 1000 {
		t.Fatalf("assumed cpu = %d", got)
	}
	// The informer shows the pod bound: it is counted once, no longer assumed.
	bound := pod.DeepCopy()
	bound.Spec.NodeName = "n"
	c.setPod(bound)
	if got := c.nodes["n"].requested[corev1.ResourceCPU]; got != 1000 || c.isAssumed(pod.UID) {
		t.Fatalf("after confirmation cpu = %d assumed = %v", got, c.isAssumed(pod.UID))
	}
	c.forget(pod.UID) // confirmed pods are not forgotten
	if c.nodes["n"].pods != 1 {
		t.Fatal("forget dropped a confirmed pod")
	}
	done := bound.DeepCopy()
	done.Status.Phase = corev1.PodSucceeded
	if freed := c.setPod(done); !freed || c.nodes["n"].pods != 0 {
		t.Fatalf("finished pod still counted (freed=%v)", freed)
	}
}
