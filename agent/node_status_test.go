package agent

import (
	"context"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestNodeRegisteredWithCapacity(t *testing.T) {
	env := newTestEnv(t, nil)
	env.start()
	var node *v1.Node
	env.eventually("node registered and Ready", func() bool {
		n, err := env.client.CoreV1().Nodes().Get(context.Background(), testNode, metav1.GetOptions{})
		if err != nil {
			return false
		}
		node = n
		return nodeReady(n) == v1.ConditionTrue
	})
	m := env.agent.machine
	if got := node.Status.Capacity.Cpu().Value(); got != int64(m.numCPU) || got < 1 {
		t.Errorf("cpu capacity %d, want %d", got, m.numCPU)
	}
	if got := node.Status.Capacity.Memory().Value(); got != m.memoryBytes || got <= 0 {
		t.Errorf("memory capacity %d, want %d", got, m.memoryBytes)
	}
	if got := node.Status.Capacity.Pods().Value(); got != DefaultMaxPods {
		t.Errorf("pods capacity %d", got)
	}
	if node.Status.Capacity.StorageEphemeral().Value() <= 0 {
		t.Errorf("ephemeral-storage capacity %v", node.Status.Capacity.StorageEphemeral())
	}
	if node.Spec.PodCIDR != "10.244.1.0/24" || len(node.Spec.PodCIDRs) != 1 {
		t.Errorf("podCIDR %q %v", node.Spec.PodCIDR, node.Spec.PodCIDRs)
	}
	info := node.Status.NodeInfo
	if info.ContainerRuntimeVersion != "fakeRuntime://0.1.0" || info.KubeletVersion != KubeletVersion || info.KernelVersion == "" || info.OSImage == "" {
		t.Errorf("nodeInfo %+v", info)
	}
	if len(node.Status.Addresses) != 2 || node.Status.Addresses[0] != (v1.NodeAddress{Type: v1.NodeInternalIP, Address: "10.0.0.5"}) {
		t.Errorf("addresses %v", node.Status.Addresses)
	}
	if countCalls(env.runtime.GetCalls(), "UpdateRuntimeConfig") == 0 {
		t.Error("pod CIDR was not passed to the runtime")
	}
	for _, c := range node.Status.Conditions {
		if c.Type != v1.NodeReady && c.Status != v1.ConditionFalse {
			t.Errorf("condition %s = %s", c.Type, c.Status)
		}
	}
}

func nodeReady(n *v1.Node) v1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == v1.NodeReady {
			return c.Status
		}
	}
	return v1.ConditionUnknown
}

func TestNodeNotReadyWhenNetworkIsNot(t *testing.T) {
	env := newTestEnv(t, nil)
	env.runtime.FakeStatus = &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
		{Type: runtimeapi.RuntimeReady, Status: true},
		{Type: runtimeapi.NetworkReady, Status: false, Reason: "NetworkPluginNotReady", Message: "cni config uninitialized"},
	}}
	cond, network, _ := env.agent.runtimeState(context.Background())
	if cond.Status != v1.ConditionFalse || cond.Reason != "KubeletNotReady" ||
		!strings.Contains(cond.Message, "NetworkReady=false reason:NetworkPluginNotReady message:cni config uninitialized") {
		t.Errorf("ready condition %+v", cond)
	}
	if network.Type != v1.NodeNetworkUnavailable || network.Status != v1.ConditionTrue || network.Reason != "NetworkNotReady" ||
		!strings.Contains(network.Message, "cni config uninitialized") {
		t.Errorf("network condition %+v", network)
	}
	env.runtime.FakeStatus = readyRuntimeStatus()
	cond, network, _ = env.agent.runtimeState(context.Background())
	if cond.Status != v1.ConditionTrue || cond.Reason != "KubeletReady" {
		t.Errorf("ready condition %+v", cond)
	}
	if network.Status != v1.ConditionFalse || network.Reason != "NetworkReady" {
		t.Errorf("network condition %+v", network)
	}
}

func TestNodeStatusWrittenOnlyOnChange(t *testing.T) {
	env := newTestEnv(t, nil)
	ctx := context.Background()
	env.agent.runtimeName = "fakeRuntime"
	if err := env.agent.registerNode(ctx); err != nil {
		t.Fatal(err)
	}
	countStatusUpdates := func() int {
		n := 0
		for _, a := range env.client.Actions() {
			if a.GetVerb() == "update" && a.GetResource().Resource == "nodes" && a.GetSubresource() == "status" {
				n++
			}
		}
		return n
	}
	before := countStatusUpdates()
	for range 3 {
		if err := env.agent.updateNodeStatus(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := countStatusUpdates(); got != before {
		t.Errorf("%d status writes without a change", got-before)
	}
	env.runtime.FakeStatus = &runtimeapi.RuntimeStatus{}
	if err := env.agent.updateNodeStatus(ctx); err != nil {
		t.Fatal(err)
	}
	if got := countStatusUpdates(); got != before+1 {
		t.Errorf("%d status writes after the runtime went down, want 1", got-before)
	}
}

func TestLeaseRenewed(t *testing.T) {
	env := newTestEnv(t, nil)
	env.start()
	var first *metav1.MicroTime
	env.eventually("lease created with an owner", func() bool {
		l, err := env.client.CoordinationV1().Leases(nodeLeaseNamespace).Get(context.Background(), testNode, metav1.GetOptions{})
		if err != nil || len(l.OwnerReferences) == 0 {
			return false
		}
		first = l.Spec.RenewTime
		return true
	})
	env.eventually("lease renewed", func() bool {
		l, err := env.client.CoordinationV1().Leases(nodeLeaseNamespace).Get(context.Background(), testNode, metav1.GetOptions{})
		if err != nil {
			return false
		}
		if *l.Spec.HolderIdentity != testNode || *l.Spec.LeaseDurationSeconds != 1 {
			t.Fatalf("lease spec %+v", l.Spec)
		}
		ref := l.OwnerReferences[0]
		if ref.Kind != "Node" || ref.Name != testNode || ref.UID == "" {
			t.Fatalf("owner %+v", ref)
		}
		return l.Spec.RenewTime.After(first.Time)
	})
}
