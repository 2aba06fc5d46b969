package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
)

// The generated network masquerades pod traffic with one chain per pod CIDR rather than the
// bridge plugin's ipMasq, which builds a chain per pod: four to six iptables runs on every
// CNI ADD and as many on every DEL, more than half of the time a sandbox's network takes.
// The chain holds the same rules the bridge plugin would write, keyed on the pod CIDR
// instead of one pod IP, and is named and tagged the way the plugins name theirs, so
// Cleanup finds it with the plugins' own rules.

// masqueradeID stands in for a container ID in the chain name and comment: no container
// is called that, so the per-pod chains never collide with it.
const masqueradeID = "skiff-pod-cidr-masquerade"

// multicastNet is never masqueraded, as with the bridge plugin.
const multicastNet = "224.0.0.0/4"

// generatedMasqCIDR returns the pod CIDR to masquerade for a generated conflist: the
// bridge's subnet when the bridge leaves masquerading to us (ipMasq false), else "".
func generatedMasqCIDR(conflist []byte) string {
	br, ok := bridgePlugin(conflist)
	if !ok || br.IPMasq || len(br.IPAM.Ranges) == 0 || len(br.IPAM.Ranges[0]) == 0 {
		return ""
	}
	return br.IPAM.Ranges[0][0].Subnet
}

// bridgeMasquerades reports whether a conflist's bridge plugin masquerades per pod
// (ipMasq); an unreadable config counts as yes, so that its rules get cleaned up.
func bridgeMasquerades(conflist []byte) bool {
	br, ok := bridgePlugin(conflist)
	return !ok || br.IPMasq
}

// bridgeConf is what skiff reads of a bridge plugin's config.
type bridgeConf struct {
	Type   string `json:"type"`
	Bridge string `json:"bridge"`
	IPMasq bool   `json:"ipMasq"`
	IPAM   struct {
		Ranges [][]struct {
			Subnet string `json:"subnet"`
		} `json:"ranges"`
	} `json:"ipam"`
}

// bridgePlugin returns the first bridge plugin of a config list.
func bridgePlugin(conflist []byte) (bridgeConf, bool) {
	var list struct {
		Plugins []bridgeConf `json:"plugins"`
	}
	if json.Unmarshal(conflist, &list) != nil {
		return bridgeConf{}, false
	}
	for _, p := range list.Plugins {
		if p.Type == "bridge" {
			return p, true
		}
	}
	return bridgeConf{}, false
}

// ensureMasquerade makes nat POSTROUTING send traffic from cidr through the network's
// masquerade chain: ACCEPT (no NAT) towards the pod CIDR itself, the other nodes' pod CIDRs
// (podCIDRs: pods talk to pods on every node without NAT, as the Kubernetes network model
// asks) and multicast, MASQUERADE for the rest. It is idempotent, rewrites the chain when
// anything changed, and drops jumps left for an older CIDR.
func ensureMasquerade(ctx context.Context, network, cidr string, podCIDRs []string) error {
	if _, _, err := net.ParseCIDR(cidr); err != nil {
		return fmt.Errorf("masquerade pod CIDR %q: %w", cidr, err)
	}
	chain, comment := cniChainName(network, masqueradeID), cniComment(network, masqueradeID)
	chains, rules, err := listRules(ctx, "nat")
	if err != nil {
		return fmt.Errorf("masquerade pod CIDR %s: %w", cidr, err)
	}
	if !slices.Contains(chains, chain) {
		if _, err := iptables(ctx, "-t", "nat", "-N", chain); err != nil {
			return fmt.Errorf("masquerade pod CIDR %s: %w", cidr, err)
		}
	}
	jump := []string{"-s", cidr, "-m", "comment", "--comment", comment, "-j", chain}
	body := [][]string{{"-d", cidr, "-m", "comment", "--comment", comment, "-j", "ACCEPT"}}
	for _, other := range podCIDRs {
		body = append(body, []string{"-d", other, "-m", "comment", "--comment", comment, "-j", "ACCEPT"})
	}
	body = append(body, []string{"!", "-d", multicastNet, "-m", "comment", "--comment", comment, "-j", "MASQUERADE"})
	haveJump, haveBody := false, 0
	var errs []error
	for _, r := range rules {
		switch {
		case r.chain == "POSTROUTING" && r.target() == chain && !matchesRule(r, jump):
			errs = append(errs, deleteRule(ctx, "nat", r)) // a jump for an older CIDR
		case r.chain == "POSTROUTING" && r.target() == chain:
			haveJump = true
		case r.chain == chain && haveBody < len(body) && matchesRule(r, body[haveBody]):
			haveBody++
		case r.chain == chain:
			haveBody = len(body) + 1 // anything else: rewrite the chain
		}
	}
	if haveBody != len(body) {
		errs = append(errs, rewriteChain(ctx, chain, body))
	}
	if !haveJump {
		_, err := iptables(ctx, append([]string{"-t", "nat", "-A", "POSTROUTING"}, jump...)...)
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("masquerade pod CIDR %s: %w", cidr, err)
	}
	return nil
}

// rewriteChain flushes a nat chain and appends rules to it.
func rewriteChain(ctx context.Context, chain string, rules [][]string) error {
	if _, err := iptables(ctx, "-t", "nat", "-F", chain); err != nil {
		return err
	}
	for _, r := range rules {
		if _, err := iptables(ctx, append([]string{"-t", "nat", "-A", chain}, r...)...); err != nil {
			return err
		}
	}
	return nil
}

// matchesRule reports whether an `iptables -S` rule carries the same arguments as want,
// up to the normalisation iptables applies to addresses (10.0.0.0/24 for 10.0.0.0/24,
// 1.2.3.4/32 for 1.2.3.4).
func matchesRule(r rule, want []string) bool {
	return slices.Equal(normaliseArgs(r.args), normaliseArgs(want))
}

func normaliseArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if i > 0 && (args[i-1] == "-s" || args[i-1] == "-d") {
			if _, n, err := net.ParseCIDR(a); err == nil {
				out[i] = n.String()
			}
		}
	}
	return out
}
