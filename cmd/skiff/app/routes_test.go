package app

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiff-sh/skiff/network"
)

func testNode(name, cidr, ip string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if cidr != "" {
		n.Spec.PodCIDR, n.Spec.PodCIDRs = cidr, []string{cidr}
	}
	if ip != "" {
		n.Status.Addresses = []corev1.NodeAddress{
			{Type: corev1.NodeHostName, Address: name},
			{Type: corev1.NodeInternalIP, Address: ip},
		}
	}
	return n
}

func routesString(routes []network.Route) string {
	s := ""
	for _, r := range routes {
		s += fmt.Sprintf("%s via %s;", r.Dst, r.Via)
	}
	return s
}

func TestDesiredRoutes(t *testing.T) {
	dual := testNode("dual", "", "10.0.0.5")
	dual.Spec.PodCIDRs = []string{"fd00:1::/64", "10.244.5.0/24"}
	v6only := testNode("v6", "10.244.6.0/24", "fd00::6")
	nodes := []*corev1.Node{
		testNode("self", "10.244.1.0/24", "10.0.0.1"),
		testNode("b", "10.244.3.0/24", "10.0.0.3"),
		testNode("a", "10.244.2.0/24", "10.0.0.2"),
		testNode("no-cidr", "", "10.0.0.4"),
		testNode("no-ip", "10.244.4.0/24", ""),
		dual,
		v6only,
		testNode("twin", "10.244.7.0/24", "10.0.0.1"), // our own address: no route
	}
	routes, skipped := desiredRoutes("self", nodes)
	want := "10.244.2.0/24 via 10.0.0.2;10.244.3.0/24 via 10.0.0.3;10.244.5.0/24 via 10.0.0.5;"
	if got := routesString(routes); got != want {
		t.Errorf("routes = %q, want %q", got, want)
	}
	for _, name := range []string{"no-cidr", "no-ip", "v6", "twin"} {
		if _, ok := skipped[name]; !ok {
			t.Errorf("node %s not reported as skipped (skipped: %v)", name, skipped)
		}
	}
	if len(skipped) != 4 {
		t.Errorf("skipped = %v, want exactly no-cidr, no-ip, v6, twin", skipped)
	}
	if skipped["twin"] != reasonSameAddress {
		t.Errorf("twin skipped for %q, want %q", skipped["twin"], reasonSameAddress)
	}
}

// recordingSyncer fails the first failures calls, to exercise the retry, and remembers the
// routes of each call that succeeded.
type recordingSyncer struct {
	mu       sync.Mutex
	calls    int
	applied  [][]network.Route
	failures int
}

func (r *recordingSyncer) SyncRoutes(_ context.Context, routes []network.Route) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.failures > 0 {
		r.failures--
		return fmt.Errorf("injected failure")
	}
	r.applied = append(r.applied, routes)
	return nil
}

func (r *recordingSyncer) last() (string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.applied) == 0 {
		return "<none>", r.calls
	}
	return routesString(r.applied[len(r.applied)-1]), r.calls
}

func waitRoutes(t *testing.T, s *recordingSyncer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := s.last()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("routes = %q, want %q", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNodeRoutesFollowsNodes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := fake.NewClientset(testNode("self", "10.244.1.0/24", "10.0.0.1"), testNode("a", "10.244.2.0/24", "10.0.0.2"))
	syncer := &recordingSyncer{failures: 2}
	done := make(chan error, 1)
	go func() { done <- runNodeRoutes(ctx, client, "self", syncer) }()

	// The first two syncs fail; the retry still lands the route.
	waitRoutes(t, syncer, "10.244.2.0/24 via 10.0.0.2;")
	if _, calls := syncer.last(); calls < 3 {
		t.Errorf("SyncRoutes called %d times, want >= 3 (two injected failures, then success)", calls)
	}

	nodes := client.CoreV1().Nodes()
	if _, err := nodes.Create(ctx, testNode("b", "10.244.3.0/24", "10.0.0.3"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRoutes(t, syncer, "10.244.2.0/24 via 10.0.0.2;10.244.3.0/24 via 10.0.0.3;")

	moved := testNode("a", "10.244.2.0/24", "10.0.0.22")
	if _, err := nodes.Update(ctx, moved, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRoutes(t, syncer, "10.244.2.0/24 via 10.0.0.22;10.244.3.0/24 via 10.0.0.3;")

	if err := nodes.Delete(ctx, "b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRoutes(t, syncer, "10.244.2.0/24 via 10.0.0.22;")

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("runNodeRoutes returned %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("runNodeRoutes did not return after cancel")
	}
}

func TestInternalIPv4(t *testing.T) {
	n := testNode("x", "", "")
	n.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeExternalIP, Address: "192.0.2.1"},
		{Type: corev1.NodeInternalIP, Address: "fd00::1"},
		{Type: corev1.NodeInternalIP, Address: "10.1.2.3"},
	}
	if got := internalIPv4(n); !got.Equal(net.ParseIP("10.1.2.3")) {
		t.Errorf("internalIPv4 = %v, want 10.1.2.3", got)
	}
}

func TestRouteChanged(t *testing.T) {
	base := testNode("a", "10.244.2.0/24", "10.0.0.2")
	base.ResourceVersion = "1"
	heartbeat := base.DeepCopy()
	heartbeat.ResourceVersion = "2"
	heartbeat.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	moved := heartbeat.DeepCopy()
	moved.Status.Addresses[1].Address = "10.0.0.22"
	recidr := heartbeat.DeepCopy()
	recidr.Spec.PodCIDR, recidr.Spec.PodCIDRs = "10.244.9.0/24", []string{"10.244.9.0/24"}
	for _, tc := range []struct {
		name string
		new  *corev1.Node
		want bool
	}{
		{"resync (same resourceVersion)", base.DeepCopy(), true},
		{"status heartbeat", heartbeat, false},
		{"new InternalIP", moved, true},
		{"new pod CIDR", recidr, true},
	} {
		if got := routeChanged(base, tc.new); got != tc.want {
			t.Errorf("%s: routeChanged = %v, want %v", tc.name, got, tc.want)
		}
	}
}
