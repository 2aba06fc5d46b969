package scheduler

import (
	"net"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// assumeTTL bounds how long a pod stays assumed after its binding succeeded without the
// informer showing it bound (it may have been deleted in between).
const assumeTTL = 2 * time.Minute

// nodeInfo is a node and what the pods bound or assumed to it take from it.
type nodeInfo struct {
	node        *corev1.Node // nil while pods name a node the informer does not know
	allocatable resources    // node.Status.Allocatable, parsed once
	requested   resources
	nonZeroCPU  int64 // for scoring: requests with kube's defaults for containers asking nothing
	nonZeroMem  int64
	pods        int
	ports       map[hostPort]int
}

// hostPort is a port a pod takes on its node's network.
type hostPort struct {
	protocol corev1.Protocol
	ip       string
	port     int32
}

func newNodeInfo() *nodeInfo {
	return &nodeInfo{requested: resources{}, ports: map[hostPort]int{}}
}

func (ni *nodeInfo) addPod(pod *corev1.Pod, sign int) {
	req := podRequests(pod)
	cpu, mem := nonZeroRequests(pod)
	if sign > 0 {
		ni.requested.add(req)
	} else {
		ni.requested.sub(req)
	}
	ni.nonZeroCPU += int64(sign) * cpu
	ni.nonZeroMem += int64(sign) * mem
	ni.pods += sign
	for _, hp := range podHostPorts(pod) {
		ni.ports[hp] += sign
		if ni.ports[hp] <= 0 {
			delete(ni.ports, hp)
		}
	}
}

func podHostPorts(pod *corev1.Pod) []hostPort {
	var out []hostPort
	for i := range pod.Spec.Containers {
		for _, p := range pod.Spec.Containers[i].Ports {
			if p.HostPort <= 0 {
				continue
			}
			proto, ip := p.Protocol, p.HostIP
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			if ip == "" {
				ip = net.IPv4zero.String()
			}
			out = append(out, hostPort{protocol: proto, ip: ip, port: p.HostPort})
		}
	}
	return out
}

// podState is a pod the cache accounts to a node.
type podState struct {
	pod      *corev1.Pod
	node     string
	assumed  bool
	deadline time.Time // set once the binding of an assumed pod succeeded
}

// schedCache is the scheduler's view of nodes and of the pods on them, including pods it
// assumed onto a node before the informer confirms their binding.
type schedCache struct {
	mu    sync.Mutex
	now   func() time.Time
	nodes map[string]*nodeInfo
	pods  map[types.UID]*podState
}

func newSchedCache(now func() time.Time) *schedCache {
	return &schedCache{now: now, nodes: map[string]*nodeInfo{}, pods: map[types.UID]*podState{}}
}

func (c *schedCache) info(name string) *nodeInfo {
	ni, ok := c.nodes[name]
	if !ok {
		ni = newNodeInfo()
		c.nodes[name] = ni
	}
	return ni
}

func (c *schedCache) setNode(node *corev1.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ni := c.info(node.Name)
	ni.node = node
	ni.allocatable = fromList(node.Status.Allocatable)
}

func (c *schedCache) removeNode(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ni, ok := c.nodes[name]
	if !ok {
		return
	}
	if ni.pods == 0 {
		delete(c.nodes, name)
		return
	}
	ni.node, ni.allocatable = nil, nil // keep the accounting until its pods go
}

// setPod records a bound pod seen through the informer; it confirms an assumed pod. It
// reports whether a pod that counted against its node stopped counting (it finished).
func (c *schedCache) setPod(pod *corev1.Pod) (freed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, counted := c.pods[pod.UID]
	c.removeLocked(pod.UID)
	if pod.Spec.NodeName == "" || terminal(pod) {
		return counted
	}
	c.pods[pod.UID] = &podState{pod: pod, node: pod.Spec.NodeName}
	c.info(pod.Spec.NodeName).addPod(pod, 1)
	return false
}

func (c *schedCache) removePod(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(uid)
}

func (c *schedCache) removeLocked(uid types.UID) {
	st, ok := c.pods[uid]
	if !ok {
		return
	}
	delete(c.pods, uid)
	ni := c.nodes[st.node]
	ni.addPod(st.pod, -1)
	if ni.node == nil && ni.pods == 0 {
		delete(c.nodes, st.node)
	}
}

// assumeLocked accounts pod to node before its binding is confirmed. The caller holds mu.
func (c *schedCache) assumeLocked(pod *corev1.Pod, node string) {
	c.removeLocked(pod.UID)
	c.pods[pod.UID] = &podState{pod: pod, node: node, assumed: true}
	c.info(node).addPod(pod, 1)
}

// finishBinding starts the expiry clock of an assumed pod whose binding succeeded.
func (c *schedCache) finishBinding(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.pods[uid]; ok && st.assumed {
		st.deadline = c.now().Add(assumeTTL)
	}
}

// forget drops an assumed pod whose binding failed.
func (c *schedCache) forget(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.pods[uid]; ok && st.assumed {
		c.removeLocked(uid)
	}
}

func (c *schedCache) isAssumed(uid types.UID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.pods[uid]
	return ok && st.assumed
}

// cleanupExpired drops assumed pods whose confirmation never came.
func (c *schedCache) cleanupExpired() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for uid, st := range c.pods {
		if st.assumed && !st.deadline.IsZero() && now.After(st.deadline) {
			c.removeLocked(uid)
		}
	}
}

func terminal(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}
