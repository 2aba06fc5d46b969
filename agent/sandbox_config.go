package agent

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// podLogDir is where the runtime writes the pod's container logs, kubelet's layout
// <logs>/<namespace>_<name>_<uid>.
func (a *Agent) podLogDir(pod *v1.Pod) string {
	return filepath.Join(a.cfg.PodLogsDir, fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID))
}

// podDir holds the pod's files on the node (termination-message files, volumes).
func (a *Agent) podDir(pod *v1.Pod) string {
	return filepath.Join(a.cfg.RootDir, "pods", string(pod.UID))
}

// sandboxConfig builds the CRI sandbox config of a pod.
func (a *Agent) sandboxConfig(pod *v1.Pod, attempt uint32) (*runtimeapi.PodSandboxConfig, error) {
	dns, err := a.dnsConfig(pod)
	if err != nil {
		return nil, err
	}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{
			Name: pod.Name, Namespace: pod.Namespace, Uid: string(pod.UID), Attempt: attempt,
		},
		Hostname:     a.podHostname(pod),
		LogDirectory: a.podLogDir(pod),
		DnsConfig:    dns,
		PortMappings: portMappings(pod),
		Labels:       a.sandboxLabels(pod),
		Annotations:  copyMap(pod.Annotations),
		Linux:        a.linuxSandboxConfig(pod),
	}
	return cfg, nil
}

func (a *Agent) podHostname(pod *v1.Pod) string {
	if pod.Spec.HostNetwork {
		return a.machine.hostname
	}
	name := pod.Name
	if pod.Spec.Hostname != "" {
		name = pod.Spec.Hostname
	}
	// Hostnames are DNS labels: at most 63 characters, not ending in '-' or '.'.
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-.")
	}
	return name
}

func portMappings(pod *v1.Pod) []*runtimeapi.PortMapping {
	var out []*runtimeapi.PortMapping
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.HostPort == 0 {
				continue
			}
			out = append(out, &runtimeapi.PortMapping{
				Protocol:      criProtocol(p.Protocol),
				ContainerPort: p.ContainerPort,
				HostPort:      p.HostPort,
				HostIp:        p.HostIP,
			})
		}
	}
	return out
}

func criProtocol(p v1.Protocol) runtimeapi.Protocol {
	switch p {
	case v1.ProtocolUDP:
		return runtimeapi.Protocol_UDP
	case v1.ProtocolSCTP:
		return runtimeapi.Protocol_SCTP
	default:
		return runtimeapi.Protocol_TCP
	}
}

func (a *Agent) linuxSandboxConfig(pod *v1.Pod) *runtimeapi.LinuxPodSandboxConfig {
	sc := &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: namespaceOptions(pod)}
	if psc := pod.Spec.SecurityContext; psc != nil {
		sc.RunAsUser = int64Value(psc.RunAsUser)
		sc.RunAsGroup = int64Value(psc.RunAsGroup)
		sc.SupplementalGroups = psc.SupplementalGroups
		if psc.FSGroup != nil {
			sc.SupplementalGroups = append(sc.SupplementalGroups, *psc.FSGroup)
		}
	}
	// Like kubelet: the sandbox is privileged when any container (init ones included) is.
	for _, c := range append(append([]v1.Container(nil), pod.Spec.InitContainers...), pod.Spec.Containers...) {
		if c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged {
			sc.Privileged = true
		}
	}
	cfg := &runtimeapi.LinuxPodSandboxConfig{
		CgroupParent:    a.podCgroupParent(pod),
		SecurityContext: sc,
	}
	if psc := pod.Spec.SecurityContext; psc != nil && len(psc.Sysctls) > 0 {
		cfg.Sysctls = map[string]string{}
		for _, s := range psc.Sysctls {
			cfg.Sysctls[s.Name] = s.Value
		}
	}
	return cfg
}

func namespaceOptions(pod *v1.Pod) *runtimeapi.NamespaceOption {
	ns := &runtimeapi.NamespaceOption{
		Network: runtimeapi.NamespaceMode_POD,
		Pid:     runtimeapi.NamespaceMode_CONTAINER,
		Ipc:     runtimeapi.NamespaceMode_POD,
	}
	if pod.Spec.HostNetwork {
		ns.Network = runtimeapi.NamespaceMode_NODE
	}
	if pod.Spec.HostIPC {
		ns.Ipc = runtimeapi.NamespaceMode_NODE
	}
	switch {
	case pod.Spec.HostPID:
		ns.Pid = runtimeapi.NamespaceMode_NODE
	case pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace:
		ns.Pid = runtimeapi.NamespaceMode_POD
	}
	return ns
}

// dnsConfig follows kubelet's policy. The agent has no cluster DNS yet, so ClusterFirst
// falls back to the host's resolv.conf exactly as kubelet does when no clusterDNS is set;
// None uses only the pod's dnsConfig, which is merged into the others as well.
func (a *Agent) dnsConfig(pod *v1.Pod) (*runtimeapi.DNSConfig, error) {
	cfg := &runtimeapi.DNSConfig{}
	if pod.Spec.DNSPolicy != v1.DNSNone {
		host, err := parseResolvConf(a.cfg.ResolvConf)
		if err != nil {
			return nil, err
		}
		cfg = host
	}
	if pd := pod.Spec.DNSConfig; pd != nil {
		cfg.Servers = appendUnique(cfg.Servers, pd.Nameservers...)
		cfg.Searches = appendUnique(cfg.Searches, pd.Searches...)
		for _, o := range pd.Options {
			opt := o.Name
			if o.Value != nil {
				opt += ":" + *o.Value
			}
			cfg.Options = appendUnique(cfg.Options, opt)
		}
	}
	return cfg, nil
}

// usesClusterDNS: the pod asked for cluster DNS, which this agent does not have yet.
func usesClusterDNS(pod *v1.Pod) bool {
	p := pod.Spec.DNSPolicy
	return p == v1.DNSClusterFirstWithHostNet || (p == v1.DNSClusterFirst || p == "") && !pod.Spec.HostNetwork
}

// parseResolvConf reads nameservers, search domains and options from a resolv.conf.
// A missing file means no DNS settings, as for kubelet.
func parseResolvConf(path string) (*runtimeapi.DNSConfig, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return &runtimeapi.DNSConfig{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read resolv.conf: %w", err)
	}
	cfg := &runtimeapi.DNSConfig{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			cfg.Servers = append(cfg.Servers, f[1])
		case "search":
			cfg.Searches = f[1:] // the last search line wins
		case "options":
			cfg.Options = append(cfg.Options, f[1:]...)
		}
	}
	return cfg, nil
}

func appendUnique(list []string, items ...string) []string {
	for _, it := range items {
		found := false
		for _, l := range list {
			if l == it {
				found = true
				break
			}
		}
		if !found {
			list = append(list, it)
		}
	}
	return list
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func int64Value(p *int64) *runtimeapi.Int64Value {
	if p == nil {
		return nil
	}
	return &runtimeapi.Int64Value{Value: *p}
}
