package cri

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// writeSandboxFiles writes the hostname, hosts and resolv.conf files containers mount.
func writeSandboxFiles(dir string, cfg *runtimeapi.PodSandboxConfig, ips []string) error {
	hostname := cfg.GetHostname()
	if hostname == "" || hostNetwork(cfg) {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("host name: %w", err)
		}
		hostname = h
	}
	var hosts []byte
	if hostNetwork(cfg) {
		data, err := os.ReadFile("/etc/hosts")
		if err != nil {
			return fmt.Errorf("read host /etc/hosts: %w", err)
		}
		hosts = data
	} else {
		h := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
		if len(ips) > 0 {
			h += ips[0] + "\t" + hostname + "\n"
		}
		hosts = []byte(h)
	}
	resolv, err := resolvConf(cfg.GetDnsConfig())
	if err != nil {
		return err
	}
	files := map[string][]byte{"hostname": []byte(hostname + "\n"), "hosts": hosts, "resolv.conf": resolv}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("write sandbox %s: %w", name, err)
		}
	}
	return nil
}

// resolvConf renders the pod's DNS config, or copies the host's when it has none.
func resolvConf(dns *runtimeapi.DNSConfig) ([]byte, error) {
	if len(dns.GetServers()) == 0 && len(dns.GetSearches()) == 0 && len(dns.GetOptions()) == 0 {
		data, err := os.ReadFile("/etc/resolv.conf")
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("read host resolv.conf: %w", err)
		}
		return data, nil
	}
	var b strings.Builder
	if len(dns.GetSearches()) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(dns.GetSearches(), " "))
	}
	for _, srv := range dns.GetServers() {
		fmt.Fprintf(&b, "nameserver %s\n", srv)
	}
	if len(dns.GetOptions()) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(dns.GetOptions(), " "))
	}
	return []byte(b.String()), nil
}
