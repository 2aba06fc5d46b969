package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/containernetworking/cni/libcni"
	cnitypes "github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"k8s.io/klog/v2"
)

// podIfName is the pod's interface, named as Kubernetes names it.
const podIfName = "eth0"

// Attach runs CNI ADD for the pod: loopback and the pod network side by side (they touch
// different interfaces of the netns), the pod network without portmap when the pod maps no
// host port. When either fails, whatever was done is undone (CNI DEL) before the error is
// returned, so a failed Attach holds no IP.
func (m *Manager) Attach(ctx context.Context, pod Pod) (*Result, error) {
	logger := klog.FromContext(ctx).WithValues("pod", klog.KRef(pod.Namespace, pod.Name), "sandbox", pod.ID)
	if err := validatePod(pod, true); err != nil {
		return nil, err
	}
	list, err := m.networkFor(pod)
	if err != nil {
		return nil, err
	}
	loErr := make(chan error, 1)
	go func() {
		_, err := m.cni.AddNetworkList(ctx, m.loopback, m.runtimeConf(pod, "lo", pod.NetnsPath))
		if err != nil {
			err = fmt.Errorf("CNI ADD loopback for sandbox %s: %w", pod.ID, err)
		}
		loErr <- err
	}()
	raw, err := m.cni.AddNetworkList(ctx, list, m.runtimeConf(pod, podIfName, pod.NetnsPath))
	var res *Result
	if err == nil {
		res, err = convertResult(raw)
	}
	if err != nil {
		err = fmt.Errorf("CNI ADD network %q for sandbox %s: %w", list.Name, pod.ID, err)
	}
	if err = errors.Join(err, <-loErr); err != nil {
		if delErr := m.Detach(context.WithoutCancel(ctx), pod); delErr != nil {
			return nil, errors.Join(err, fmt.Errorf("undo failed ADD: %w", delErr))
		}
		return nil, err
	}
	logger.V(2).Info("Attached pod network", "network", list.Name, "ips", res.IPs)
	return res, nil
}

// Detach runs CNI DEL for the pod, with the config its ADD used (libcni's cache) when there
// is one: a DEL after an upgrade or a config change undoes what the ADD did. It is
// idempotent and works when the netns is already gone (plugins then release the IP and skip
// the interface); it also removes the masquerade rules the bridge plugin cannot find
// without the netns.
func (m *Manager) Detach(ctx context.Context, pod Pod) error {
	if err := validatePod(pod, false); err != nil {
		return err
	}
	list, err := m.network()
	if err != nil {
		return err
	}
	netns := pod.NetnsPath
	if netns != "" && !isNetns(netns) {
		netns = ""
	}
	rt := m.runtimeConf(pod, podIfName, netns)
	list = m.addedWith(list, rt)
	loErr := make(chan error, 1)
	go func() {
		err := m.cni.DelNetworkList(ctx, m.loopback, m.runtimeConf(pod, "lo", netns))
		if err != nil {
			err = fmt.Errorf("CNI DEL loopback for sandbox %s: %w", pod.ID, err)
		}
		loErr <- err
	}()
	var errs []error
	if err := m.cni.DelNetworkList(ctx, list, rt); err != nil {
		errs = append(errs, fmt.Errorf("CNI DEL network %q for sandbox %s: %w", list.Name, pod.ID, err))
	}
	if netns == "" && bridgeMasquerades(list.Bytes) {
		// Without the netns the bridge plugin cannot learn the pod IP and leaves its
		// per-container masquerade chain behind.
		if err := removeMasqRules(ctx, list.Name, pod.ID); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, <-loErr)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	klog.FromContext(ctx).V(2).Info("Detached pod network", "pod", klog.KRef(pod.Namespace, pod.Name), "sandbox", pod.ID)
	return nil
}

// networkFor returns the config list an ADD for pod runs: without portmap when the pod maps
// no host port.
func (m *Manager) networkFor(pod Pod) (*libcni.NetworkConfigList, error) {
	list, err := m.network()
	if err != nil || len(portMappings(pod.Ports)) > 0 {
		return list, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.noPortsList != nil && m.noPortsList.Name == list.Name {
		return m.noPortsList, nil
	}
	return list, nil
}

// addedWith returns the config list cached by the pod's ADD, or current when there is none
// (the ADD never finished, or the cache is gone): the full list undoes any ADD.
func (m *Manager) addedWith(current *libcni.NetworkConfigList, rt *libcni.RuntimeConf) *libcni.NetworkConfigList {
	data, _, err := m.cni.GetNetworkListCachedConfig(current, rt)
	if err != nil || len(data) == 0 {
		return current
	}
	cached, err := libcni.NetworkConfFromBytes(data)
	if err != nil || cached.Name != current.Name {
		return current
	}
	return cached
}

// Status runs CNI CHECK for the pod network. The portmap plugin is left out: up to at least
// version 1.1.1 (Debian bookworm) its CHECK looks for ip6tables chains that an IPv4-only pod
// never gets, and fails.
func (m *Manager) Status(ctx context.Context, pod Pod) error {
	if err := validatePod(pod, true); err != nil {
		return err
	}
	list, err := m.network()
	if err != nil {
		return err
	}
	if list.DisableCheck {
		return nil
	}
	check := *list
	check.Plugins = slices.DeleteFunc(slices.Clone(list.Plugins), func(p *libcni.PluginConfig) bool {
		return p.Network.Type == "portmap"
	})
	if err := m.cni.CheckNetworkList(ctx, &check, m.runtimeConf(pod, podIfName, pod.NetnsPath)); err != nil {
		return fmt.Errorf("CNI CHECK network %q for sandbox %s: %w", list.Name, pod.ID, err)
	}
	return nil
}

func validatePod(pod Pod, needNetns bool) error {
	if pod.ID == "" {
		return errors.New("pod network: sandbox ID is required")
	}
	if needNetns && pod.NetnsPath == "" {
		return fmt.Errorf("pod network for sandbox %s: netns path is required", pod.ID)
	}
	return nil
}

func (m *Manager) runtimeConf(pod Pod, ifName, netns string) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{
		ContainerID: pod.ID,
		NetNS:       netns,
		IfName:      ifName,
		// IgnoreUnknown lets plugins that don't know the K8S_* keys accept them.
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", pod.Namespace},
			{"K8S_POD_NAME", pod.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", pod.ID},
			{"K8S_POD_UID", pod.UID},
		},
	}
	if pm := portMappings(pod.Ports); len(pm) > 0 {
		rt.CapabilityArgs = map[string]any{"portMappings": pm}
	}
	return rt
}

// portMapping is the portmap plugin's "portMappings" capability entry.
type portMapping struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// portMappings keeps the ports that ask for a host port, as kubelet does.
func portMappings(ports []PortMapping) []portMapping {
	var out []portMapping
	for _, p := range ports {
		if p.HostPort <= 0 || p.ContainerPort <= 0 {
			continue
		}
		proto := strings.ToLower(p.Protocol)
		if proto == "" {
			proto = "tcp"
		}
		out = append(out, portMapping{HostPort: p.HostPort, ContainerPort: p.ContainerPort, Protocol: proto, HostIP: p.HostIP})
	}
	return out
}

// convertResult picks the pod's addresses out of a CNI result: those on the interface inside
// the sandbox (or unattributed ones), IPv4 first.
func convertResult(raw cnitypes.Result) (*Result, error) {
	r, err := types100.NewResultFromResult(raw)
	if err != nil {
		return nil, fmt.Errorf("convert CNI result: %w", err)
	}
	res := &Result{Interface: podIfName}
	var v6 []net.IP
	for _, ipc := range r.IPs {
		if ipc.Interface != nil {
			idx := *ipc.Interface
			if idx < 0 || idx >= len(r.Interfaces) || r.Interfaces[idx].Sandbox == "" {
				continue
			}
			res.Interface = r.Interfaces[idx].Name
		}
		if ip4 := ipc.Address.IP.To4(); ip4 != nil {
			res.IPs = append(res.IPs, ip4)
		} else {
			v6 = append(v6, ipc.Address.IP)
		}
	}
	res.IPs = append(res.IPs, v6...)
	if len(res.IPs) == 0 {
		return nil, errors.New("CNI result has no IP address for the pod")
	}
	return res, nil
}
