package agent

import (
	"context"
	"fmt"
	goruntime "runtime"
	"sort"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
)

const (
	// nodeStatusReportFrequency is how often status is written even when nothing changed,
	// as a heartbeat beside the Lease (kubelet's default).
	nodeStatusReportFrequency = 5 * time.Minute
	maxNodeImages             = 50
)

// runNodeStatus registers the node, then keeps its status current.
func (a *Agent) runNodeStatus(ctx context.Context) {
	logger := klog.FromContext(ctx)
	backoff := wait.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Cap: 7 * time.Second, Steps: 1 << 30}
	for ctx.Err() == nil {
		err := a.registerNode(ctx)
		if err == nil {
			break
		}
		logger.Error(err, "Registering node")
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff.Step()):
		}
	}
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		err := a.updateNodeStatus(ctx)
		if apierrors.IsNotFound(err) {
			// Someone deleted our Node: register it again rather than vanish.
			logger.Info("Node object is gone, registering again")
			err = a.registerNode(ctx)
		}
		if err != nil && ctx.Err() == nil {
			logger.Error(err, "Updating node status")
		}
	}, a.cfg.NodeStatusUpdateFrequency)
}

// registerNode creates the Node, or adopts an existing one of the same name (an agent
// restart, or a node deleted and re-registered).
func (a *Agent) registerNode(ctx context.Context) error {
	if a.cfg.PodCIDR != "" {
		if err := a.applyPodCIDR(ctx, a.cfg.PodCIDR); err != nil {
			return err
		}
	}
	node := a.initialNode()
	node.Status = a.nodeStatus(ctx, nil)
	nodes := a.cfg.Client.CoreV1().Nodes()
	created, err := nodes.Create(ctx, node, metav1.CreateOptions{})
	if err == nil {
		a.setNodeUID(created.UID)
		a.lastNodeReport = time.Now()
		klog.FromContext(ctx).Info("Node registered", "uid", created.UID)
		return a.ensureNodeStatus(ctx, created, node.Status)
	}
	if !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create node: %w", err)
	}
	existing, err := a.reconcileExistingNode(ctx, node)
	if err != nil {
		return err
	}
	a.setNodeUID(existing.UID)
	klog.FromContext(ctx).Info("Node already registered, updating it", "uid", existing.UID)
	return a.updateNodeStatus(ctx)
}

// ensureNodeStatus writes the status when the apiserver dropped it on create (a real
// apiserver ignores status on create of a resource with a status subresource).
func (a *Agent) ensureNodeStatus(ctx context.Context, created *v1.Node, want v1.NodeStatus) error {
	if len(created.Status.Conditions) > 0 {
		return nil
	}
	created.Status = want
	if _, err := a.cfg.Client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("write initial node status: %w", err)
	}
	return nil
}

// reconcileExistingNode merges our labels and pod CIDR into a node that already exists.
func (a *Agent) reconcileExistingNode(ctx context.Context, want *v1.Node) (*v1.Node, error) {
	nodes := a.cfg.Client.CoreV1().Nodes()
	var out *v1.Node
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		cur, err := nodes.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		changed := false
		if cur.Labels == nil {
			cur.Labels = map[string]string{}
		}
		for k, v := range want.Labels {
			if cur.Labels[k] != v {
				cur.Labels[k], changed = v, true
			}
		}
		if want.Spec.PodCIDR != "" && cur.Spec.PodCIDR == "" {
			cur.Spec.PodCIDR, cur.Spec.PodCIDRs, changed = want.Spec.PodCIDR, want.Spec.PodCIDRs, true
		}
		if !changed {
			out = cur
			return nil
		}
		out, err = nodes.Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("update existing node: %w", err)
	}
	return out, nil
}

func (a *Agent) initialNode() *v1.Node {
	node := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: a.cfg.NodeName,
			Labels: map[string]string{
				v1.LabelHostname:          a.cfg.NodeName,
				v1.LabelOSStable:          goruntime.GOOS,
				v1.LabelArchStable:        goruntime.GOARCH,
				"beta.kubernetes.io/os":   goruntime.GOOS,
				"beta.kubernetes.io/arch": goruntime.GOARCH,
			},
			Annotations: map[string]string{
				"node.alpha.kubernetes.io/ttl":                           "0",
				"volumes.kubernetes.io/controller-managed-attach-detach": "true",
			},
		},
	}
	if a.cfg.PodCIDR != "" {
		node.Spec.PodCIDR = a.cfg.PodCIDR
		node.Spec.PodCIDRs = []string{a.cfg.PodCIDR}
	}
	return node
}

// updateNodeStatus recomputes the status and writes it when it changed or when the
// report interval passed. A pod CIDR assigned by the control plane goes to the runtime.
func (a *Agent) updateNodeStatus(ctx context.Context) error {
	nodes := a.cfg.Client.CoreV1().Nodes()
	return retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		node, err := nodes.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("get node: %w", err)
		}
		a.setNodeUID(node.UID)
		if cidr := node.Spec.PodCIDR; cidr != "" && cidr != a.currentPodCIDR() {
			if err := a.applyPodCIDR(ctx, cidr); err != nil {
				return err
			}
		}
		status := a.nodeStatus(ctx, node)
		if nodeStatusEqual(node.Status, status) && time.Since(a.lastNodeReport) < nodeStatusReportFrequency {
			return nil
		}
		node.Status = status
		if _, err := nodes.UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
			return err
		}
		a.lastNodeReport = time.Now()
		return nil
	})
}

// applyPodCIDR hands the node's pod CIDR to the runtime, which builds pod networking on it.
func (a *Agent) applyPodCIDR(ctx context.Context, cidr string) error {
	err := a.cfg.Runtime.UpdateRuntimeConfig(ctx, &runtimeapi.RuntimeConfig{
		NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: cidr},
	})
	if err != nil {
		return fmt.Errorf("update runtime config with pod CIDR %s: %w", cidr, err)
	}
	a.nodeMu.Lock()
	a.podCIDR = cidr
	a.nodeMu.Unlock()
	klog.FromContext(ctx).Info("Pod CIDR handed to the runtime", "podCIDR", cidr)
	return nil
}

func (a *Agent) currentPodCIDR() string {
	a.nodeMu.Lock()
	defer a.nodeMu.Unlock()
	return a.podCIDR
}

func (a *Agent) setNodeUID(uid types.UID) {
	a.nodeMu.Lock()
	defer a.nodeMu.Unlock()
	a.nodeUID = uid
}

func (a *Agent) getNodeUID() types.UID {
	a.nodeMu.Lock()
	defer a.nodeMu.Unlock()
	return a.nodeUID
}

// nodeStatus computes the status; cur (may be nil) provides transition times to keep.
func (a *Agent) nodeStatus(ctx context.Context, cur *v1.Node) v1.NodeStatus {
	disk, err := diskCapacityBytes(a.cfg.RootDir)
	if err != nil {
		klog.FromContext(ctx).Error(err, "Reading disk capacity")
	}
	capacity := a.machine.capacity(disk)
	st := v1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity.DeepCopy(),
		Phase:       "",
		Addresses: []v1.NodeAddress{
			{Type: v1.NodeInternalIP, Address: a.cfg.NodeIP},
			{Type: v1.NodeHostName, Address: a.cfg.NodeName},
		},
		DaemonEndpoints: v1.NodeDaemonEndpoints{KubeletEndpoint: v1.DaemonEndpoint{Port: int32(a.cfg.KubeletPort)}},
		NodeInfo: v1.NodeSystemInfo{
			MachineID:               a.machine.machineID,
			SystemUUID:              a.machine.systemUUID,
			BootID:                  a.machine.bootID,
			KernelVersion:           a.machine.kernelVersion,
			OSImage:                 a.machine.osImage,
			ContainerRuntimeVersion: a.machine.runtimeVersion,
			KubeletVersion:          KubeletVersion,
			OperatingSystem:         goruntime.GOOS,
			Architecture:            goruntime.GOARCH,
		},
		Images: a.nodeImages(ctx),
	}
	var prev []v1.NodeCondition
	if cur != nil {
		prev = cur.Status.Conditions
	}
	ready, network, handlers := a.runtimeState(ctx)
	st.Conditions = nodeConditions(prev, append(a.pressureConditions(ctx), network), ready)
	st.RuntimeHandlers = handlers
	return st
}

// runtimeState asks the runtime whether it and its network are ready, and which
// handlers (runtime classes) it offers.
func (a *Agent) runtimeState(ctx context.Context) (ready, network v1.NodeCondition, _ []v1.NodeRuntimeHandler) {
	resp, err := a.cfg.Runtime.Status(ctx, false)
	if err != nil {
		msg := fmt.Sprintf("container runtime is down: %v", err)
		return notReadyCondition(msg), v1.NodeCondition{Type: v1.NodeNetworkUnavailable, Status: v1.ConditionUnknown,
			Reason: "RuntimeUnreachable", Message: msg}, nil
	}
	var handlers []v1.NodeRuntimeHandler
	for _, h := range resp.GetRuntimeHandlers() {
		nh := v1.NodeRuntimeHandler{Name: h.Name}
		if f := h.GetFeatures(); f != nil {
			nh.Features = &v1.NodeRuntimeHandlerFeatures{
				RecursiveReadOnlyMounts: ptr.To(f.RecursiveReadOnlyMounts),
				UserNamespaces:          ptr.To(f.UserNamespaces),
			}
		}
		handlers = append(handlers, nh)
	}
	return readyFromStatus(resp.GetStatus()), networkFromStatus(resp.GetStatus()), handlers
}

// networkFromStatus is the node's NetworkUnavailable condition, from the runtime's
// NetworkReady: skiff's agent owns the pod network (as flannel or Calico would, which set
// this condition on their nodes; kubelet leaves it to them).
func networkFromStatus(st *runtimeapi.RuntimeStatus) v1.NodeCondition {
	if cond := findRuntimeCondition(st, runtimeapi.NetworkReady); cond == nil || !cond.Status {
		return v1.NodeCondition{Type: v1.NodeNetworkUnavailable, Status: v1.ConditionTrue, Reason: "NetworkNotReady",
			Message: runtimeConditionMessage(runtimeapi.NetworkReady, cond)}
	}
	return v1.NodeCondition{Type: v1.NodeNetworkUnavailable, Status: v1.ConditionFalse, Reason: "NetworkReady",
		Message: "the container runtime reports the pod network ready"}
}

func notReadyCondition(msg string) v1.NodeCondition {
	return v1.NodeCondition{Type: v1.NodeReady, Status: v1.ConditionFalse, Reason: "KubeletNotReady", Message: msg}
}

// readyFromStatus is the node's Ready condition: the runtime and its network must be ready.
func readyFromStatus(st *runtimeapi.RuntimeStatus) v1.NodeCondition {
	var problems []string
	for _, want := range []string{runtimeapi.RuntimeReady, runtimeapi.NetworkReady} {
		cond := findRuntimeCondition(st, want)
		if cond == nil || !cond.Status {
			problems = append(problems, runtimeConditionMessage(want, cond))
		}
	}
	if len(problems) > 0 {
		return notReadyCondition(strings.Join(problems, ", "))
	}
	return v1.NodeCondition{Type: v1.NodeReady, Status: v1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status"}
}

func findRuntimeCondition(st *runtimeapi.RuntimeStatus, t string) *runtimeapi.RuntimeCondition {
	for _, c := range st.GetConditions() {
		if c.Type == t {
			return c
		}
	}
	return nil
}

// runtimeConditionMessage words a failing runtime condition like kubelet does.
func runtimeConditionMessage(t string, c *runtimeapi.RuntimeCondition) string {
	what := "container runtime not ready"
	if t == runtimeapi.NetworkReady {
		what = "container runtime network not ready"
	}
	if c == nil {
		return fmt.Sprintf("%s: %s condition missing", what, t)
	}
	return fmt.Sprintf("%s: %s=false reason:%s message:%s", what, t, c.Reason, c.Message)
}

// nodeConditions builds the four kubelet conditions (the pressure ones from pressure.go),
// keeping a transition time when the status of a condition did not change.
func nodeConditions(prev, pressure []v1.NodeCondition, ready v1.NodeCondition) []v1.NodeCondition {
	now := metav1.NewTime(time.Now())
	conds := append(append([]v1.NodeCondition(nil), pressure...), ready)
	for i := range conds {
		conds[i].LastHeartbeatTime = now
		conds[i].LastTransitionTime = now
		for _, p := range prev {
			if p.Type == conds[i].Type && p.Status == conds[i].Status {
				conds[i].LastTransitionTime = p.LastTransitionTime
			}
		}
	}
	return conds
}

// nodeImages lists the biggest images on the node, as kubelet reports them.
func (a *Agent) nodeImages(ctx context.Context) []v1.ContainerImage {
	imgs, err := a.cfg.Images.ListImages(ctx, nil)
	if err != nil {
		klog.FromContext(ctx).V(2).Info("Listing images for node status", "err", err)
		return nil
	}
	sort.Slice(imgs, func(i, j int) bool { return imgs[i].Size > imgs[j].Size })
	var out []v1.ContainerImage
	for _, img := range imgs {
		names := append(append([]string{}, img.RepoDigests...), img.RepoTags...)
		if len(names) == 0 {
			continue
		}
		out = append(out, v1.ContainerImage{Names: names, SizeBytes: int64(img.Size)})
		if len(out) == maxNodeImages {
			break
		}
	}
	return out
}

// nodeStatusEqual ignores heartbeat times, which change at every computation.
func nodeStatusEqual(a, b v1.NodeStatus) bool {
	strip := func(s v1.NodeStatus) v1.NodeStatus {
		s = *s.DeepCopy()
		for i := range s.Conditions {
			s.Conditions[i].LastHeartbeatTime = metav1.Time{}
			s.Conditions[i].LastTransitionTime = metav1.NewTime(s.Conditions[i].LastTransitionTime.Truncate(time.Second))
		}
		return s
	}
	return apiequality.Semantic.DeepEqual(strip(a), strip(b))
}
