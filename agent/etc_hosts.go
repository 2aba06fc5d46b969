package agent

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const etcHostsPath = "/etc/hosts"

// etcHostsMount writes the pod's kubelet-managed hosts file and mounts it at /etc/hosts:
// localhost entries, the pod's own IPs under its hostname, and spec.hostAliases. A host-
// network pod gets the node's hosts file (plus aliases) instead, as with kubelet.
func (a *Agent) etcHostsMount(pod *v1.Pod, c *v1.Container, podIPs []string) (*runtimeapi.Mount, error) {
	for _, m := range c.VolumeMounts {
		if m.MountPath == etcHostsPath {
			return nil, nil // the pod brings its own
		}
	}
	var buf bytes.Buffer
	if pod.Spec.HostNetwork {
		host, err := os.ReadFile(etcHostsPath)
		if err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("read node hosts file: %w", err)
		}
		buf.Write(host)
	} else {
		buf.WriteString("# Kubernetes-managed hosts file.\n" +
			"127.0.0.1\tlocalhost\n" +
			"::1\tlocalhost ip6-localhost ip6-loopback\n" +
			"fe00::0\tip6-localnet\n" +
			"fe00::0\tip6-mcastprefix\n" +
			"fe00::1\tip6-allnodes\n" +
			"fe00::2\tip6-allrouters\n")
		for _, ip := range podIPs {
			fmt.Fprintf(&buf, "%s\t%s\n", ip, a.podHostname(pod))
		}
	}
	if len(pod.Spec.HostAliases) > 0 {
		buf.WriteString("\n# Entries added by HostAliases.\n")
		for _, ha := range pod.Spec.HostAliases {
			fmt.Fprintf(&buf, "%s\t%s\n", ha.IP, strings.Join(ha.Hostnames, "\t"))
		}
	}
	path := filepath.Join(a.podDir(pod), "etc-hosts")
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("write hosts file: %w", err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return nil, fmt.Errorf("write hosts file: %w", err)
	}
	return &runtimeapi.Mount{ContainerPath: etcHostsPath, HostPath: path}, nil
}
