package registry

import (
	"context"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestNodeStrategy(t *testing.T) {
	ctx := context.Background()
	s := nodeStrategy{now: fixedClock}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-1", Labels: map[string]string{"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "worker"},
			CreationTimestamp: metav1.NewTime(fixedClock().Add(-3 * time.Hour))},
		Spec: corev1.NodeSpec{PodCIDR: "10.244.1.0/24", Unschedulable: true},
		Status: corev1.NodeStatus{
			Capacity:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: "node-1"}, {Type: corev1.NodeInternalIP, Address: "192.0.2.10"}},
			NodeInfo:   corev1.NodeSystemInfo{KubeletVersion: "v1.37.2", OSImage: "Debian GNU/Linux 12", ContainerRuntimeVersion: "containerd://1.6.20", Architecture: "amd64"},
		},
	}
	s.Default(node)
	s.PrepareForCreate(ctx, node)
	if errs := s.Validate(ctx, node); len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	if node.Status.Conditions == nil || node.Status.Allocatable.Cpu().String() != "2" || len(node.Spec.PodCIDRs) != 1 {
		t.Errorf("create must keep the kubelet's status and default allocatable: %+v", node.Status)
	}
	table, err := s.ConvertToTable(ctx, node)
	if err != nil {
		t.Fatal(err)
	}
	assertColumns(t, table, "Name", "Status", "Roles", "Age", "Version", "Internal-IP", "External-IP", "OS-Image", "Kernel-Version", "Container-Runtime")
	assertCells(t, table.Rows[0], "node-1", "Ready,SchedulingDisabled", "control-plane,worker", "3h", "v1.37.2",
		"192.0.2.10", "<none>", "Debian GNU/Linux 12", "<unknown> (amd64)", "containerd://1.6.20")

	node.ResourceVersion = "3"
	upd := node.DeepCopy()
	upd.Spec.PodCIDRs = []string{"10.244.2.0/24"}
	s.Default(upd)
	upd.Status.Conditions = nil
	s.PrepareForUpdate(ctx, upd, node)
	if upd.Status.Conditions == nil {
		t.Errorf("spec update changed the status")
	}
	if errs := s.ValidateUpdate(ctx, upd, node); !containsError(errs, "spec.podCIDRs: Forbidden") {
		t.Errorf("podCIDR change: %v", errs.ToAggregate())
	}

	_, f, _ := nodeAttrs(node)
	if f["spec.unschedulable"] != "true" || f["metadata.name"] != "node-1" || len(f) != 2 {
		t.Errorf("node fields %v", f)
	}

	bad := node.DeepCopy()
	bad.Spec.Taints = []corev1.Taint{{Key: "k", Effect: "Sometimes"}}
	if errs := s.Validate(ctx, bad); !containsError(errs, `metadata.taints[0].effect: Unsupported value: "Sometimes"`) {
		t.Errorf("taint effect: %v", errs.ToAggregate())
	}
}

func TestNamespaceStrategy(t *testing.T) {
	ctx := context.Background()
	s := namespaceStrategy{now: fixedClock}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating}}
	s.Default(ns)
	s.PrepareForCreate(ctx, ns)
	if errs := s.Validate(ctx, ns); len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	if ns.Status.Phase != corev1.NamespaceActive || ns.Labels[corev1.LabelMetadataName] != "team-a" {
		t.Errorf("namespace after create: %+v", ns)
	}
	table, err := s.ConvertToTable(ctx, &corev1.NamespaceList{Items: []corev1.Namespace{*ns}})
	if err != nil {
		t.Fatal(err)
	}
	assertColumns(t, table, "Name", "Status", "Age")
	assertCells(t, table.Rows[0], "team-a", "Active", "<unknown>")

	// Namespace names are DNS labels: no dots, unlike most names.
	dotted := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team.a"}}
	if errs := s.Validate(ctx, dotted); !containsError(errs, `metadata.name: Invalid value: "team.a"`) {
		t.Errorf("dotted namespace: %v", errs.ToAggregate())
	}
	fin := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "y"}, Spec: corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{"kubernetes", "mine"}}}
	if errs := s.Validate(ctx, fin); len(errs) != 1 || !containsError(errs, `spec.finalizers: Invalid value: "mine": name is neither a standard finalizer name nor is it fully qualified`) {
		t.Errorf("finalizers: %v", errs.ToAggregate())
	}
	inNS := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "default"}}
	if errs := s.Validate(ctx, inNS); !containsError(errs, "metadata.namespace: Forbidden") {
		t.Errorf("namespaced namespace: %v", errs.ToAggregate())
	}
	_, f, _ := namespaceAttrs(ns)
	if f["status.phase"] != "Active" || f["name"] != "team-a" {
		t.Errorf("namespace fields %v", f)
	}
}

func TestLeaseStrategy(t *testing.T) {
	ctx := context.Background()
	s := leaseStrategy{now: fixedClock}
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "node-1", Namespace: "kube-node-lease", CreationTimestamp: metav1.NewTime(fixedClock().Add(-2 * time.Minute))},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptrTo("node-1"), LeaseDurationSeconds: ptrTo[int32](40)},
	}
	s.PrepareForCreate(ctx, lease)
	if errs := s.Validate(ctx, lease); len(errs) > 0 || lease.Generation != 0 {
		t.Fatalf("lease: %v generation %d", errs.ToAggregate(), lease.Generation)
	}
	table, err := s.ConvertToTable(ctx, lease)
	if err != nil {
		t.Fatal(err)
	}
	assertColumns(t, table, "Name", "Holder", "Age")
	assertCells(t, table.Rows[0], "node-1", "node-1", "2m")
	lease.Spec.LeaseDurationSeconds = ptrTo[int32](0)
	if errs := s.Validate(ctx, lease); !containsError(errs, "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0") {
		t.Errorf("zero duration: %v", errs.ToAggregate())
	}
}

func TestEventStrategy(t *testing.T) {
	ctx := context.Background()
	s := eventStrategy{now: fixedClock}
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "my-pod.1820", Namespace: "default"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "my-pod", FieldPath: "spec.containers{nginx}"},
		Reason:         "Pulled", Message: "Successfully pulled image \"nginx\"\n", Type: corev1.EventTypeNormal,
		Source:         corev1.EventSource{Component: "kubelet", Host: "node-1"},
		FirstTimestamp: metav1.NewTime(fixedClock().Add(-5 * time.Minute)), LastTimestamp: metav1.NewTime(fixedClock().Add(-30 * time.Second)), Count: 3,
	}
	if errs := s.Validate(ctx, ev); len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	table, err := s.ConvertToTable(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	assertColumns(t, table, "Last Seen", "Type", "Reason", "Object", "Subobject", "Source", "Message", "First Seen", "Count", "Name")
	assertCells(t, table.Rows[0], "30s", "Normal", "Pulled", "pod/my-pod", "spec.containers{nginx}", "kubelet, node-1",
		"Successfully pulled image \"nginx\"", "5m", int64(3), "my-pod.1820")

	wrongNS := ev.DeepCopy()
	wrongNS.InvolvedObject.Namespace = "other"
	if errs := s.Validate(ctx, wrongNS); !containsError(errs, `involvedObject.namespace: Invalid value: "other": does not match event.namespace`) {
		t.Errorf("namespace mismatch: %v", errs.ToAggregate())
	}
	newStyle := ev.DeepCopy()
	newStyle.EventTime = metav1.NewMicroTime(fixedClock())
	if errs := s.Validate(ctx, newStyle); !containsError(errs, "reportingComponent: Required value") {
		t.Errorf("new-style event without reporter: %v", errs.ToAggregate())
	}
	_, f, _ := eventAttrs(ev)
	if f["involvedObject.name"] != "my-pod" || f["source"] != "kubelet" || f["type"] != "Normal" || f["reason"] != "Pulled" {
		t.Errorf("event fields %v", f)
	}
}
