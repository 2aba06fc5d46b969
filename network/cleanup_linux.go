package network

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// Cleanup removes what the CNI plugins left on the host for this network: the iptables rules
// and chains tagged with the network's name, portmap's shared chains once no container uses
// them, and the bridge; and the routes SyncRoutes installed. Pods should be detached first; Cleanup does not touch their netns.
// It is idempotent, and needs neither the plugins nor a pod CIDR. With a user-supplied
// config it removes that config's bridge and rules: do not share one with another runtime.
func (m *Manager) Cleanup(ctx context.Context) error {
	network, bridge := m.currentNames()
	var errs []error
	for _, table := range []string{"nat", "filter"} {
		if err := removeNetworkRules(ctx, table, network); err != nil {
			errs = append(errs, fmt.Errorf("remove %s rules of network %q: %w", table, network, err))
		}
	}
	if err := removeIdlePortmapChains(ctx); err != nil {
		errs = append(errs, fmt.Errorf("remove portmap chains: %w", err))
	}
	if err := deleteLink(bridge); err != nil {
		errs = append(errs, err)
	}
	if err := m.syncRouteTable(ctx, nil); err != nil {
		errs = append(errs, fmt.Errorf("remove pod CIDR routes: %w", err))
	}
	if len(errs) == 0 {
		klog.FromContext(ctx).V(2).Info("Cleaned up pod network", "network", network, "bridge", bridge)
	}
	return errors.Join(errs...)
}

// currentNames returns the network and bridge names of the config in use, or of the config on
// disk, or else of Config. Unlike the CNI operations it neither writes nor validates a config:
// an uninstall must work without plugins and without a pod CIDR.
func (m *Manager) currentNames() (network, bridge string) {
	network, bridge = m.cfg.NetworkName, m.cfg.BridgeName
	m.mu.RLock()
	list := m.netList
	m.mu.RUnlock()
	if list == nil {
		file, err := findConfFile(m.cfg.ConfDir)
		if err != nil || file == "" {
			file = m.cfg.generatedConfFile()
		}
		if list, err = loadConfFile(file); err != nil {
			return network, bridge
		}
	}
	if b := bridgeOf(list.Bytes); b != "" {
		bridge = b
	}
	return list.Name, bridge
}

// bridgeOf returns the bridge name of the first bridge plugin in a config list.
func bridgeOf(conflist []byte) string {
	br, ok := bridgePlugin(conflist)
	switch {
	case !ok:
		return ""
	case br.Bridge == "":
		return "cni0" // the bridge plugin's default
	default:
		return br.Bridge
	}
}

// deleteLink deletes a network interface of the host netns by name over rtnetlink; an
// interface that does not exist is not an error.
func deleteLink(name string) error {
	raw, err := os.ReadFile(filepath.Join("/sys/class/net", name, "ifindex"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	index, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		return fmt.Errorf("delete link %s: bad ifindex %q", name, raw)
	}
	if err := rtnetlinkDelLink(index); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}

// rtnetlinkDelLink deletes an interface by index.
func rtnetlinkDelLink(index int) error {
	// struct ifinfomsg: family(1) pad(1) type(2) index(4) flags(4) change(4)
	body := make([]byte, unix.SizeofIfInfomsg)
	body[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(body[4:8], uint32(int32(index)))
	_, err := netlinkRequest(unix.RTM_DELLINK, unix.NLM_F_REQUEST|unix.NLM_F_ACK, body)
	return err
}
