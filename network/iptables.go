package network

import (
	"bytes"
	"context"
	"crypto/sha512"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
)

// The CNI plugins program iptables through the iptables binary; cleaning up after them uses
// the same binary so that both see the same backend (legacy or nf_tables).

// iptables runs one iptables command, waiting for the xtables lock like the plugins do.
func iptables(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "iptables", append([]string{"-w", "5"}, args...)...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("iptables %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out.String(), nil
}

// rule is one line of `iptables -S`: the chain it is in and its match/target arguments.
type rule struct {
	chain string
	args  []string
}

// target returns the chain or verdict the rule jumps to.
func (r rule) target() string {
	for i, a := range r.args {
		if (a == "-j" || a == "-g") && i+1 < len(r.args) {
			return r.args[i+1]
		}
	}
	return ""
}

// comment returns the rule's comment match text.
func (r rule) comment() string {
	for i, a := range r.args {
		if a == "--comment" && i+1 < len(r.args) {
			return r.args[i+1]
		}
	}
	return ""
}

// listRules returns the chains and rules of a table.
func listRules(ctx context.Context, table string) (chains []string, rules []rule, err error) {
	out, err := iptables(ctx, "-t", table, "-S")
	if err != nil {
		return nil, nil, err
	}
	for _, line := range strings.Split(out, "\n") {
		fields, err := splitRule(line)
		if err != nil {
			return nil, nil, fmt.Errorf("parse iptables rule %q: %w", line, err)
		}
		switch {
		case len(fields) >= 2 && (fields[0] == "-N" || fields[0] == "-P"):
			chains = append(chains, fields[1])
		case len(fields) >= 2 && fields[0] == "-A":
			rules = append(rules, rule{chain: fields[1], args: fields[2:]})
		}
	}
	return chains, rules, nil
}

// splitRule splits an `iptables -S` line into words, undoing its quoting ("..." with \" and
// \\ escapes, as used for comments).
func splitRule(line string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord, quoted := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quoted && c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case c == '"':
			quoted, inWord = !quoted, true
		case !quoted && (c == ' ' || c == '\t'):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quoted {
		return nil, errors.New("unterminated quote")
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// deleteRule removes one rule; a rule that is already gone is not an error.
func deleteRule(ctx context.Context, table string, r rule) error {
	_, err := iptables(ctx, append([]string{"-t", table, "-D", r.chain}, r.args...)...)
	if err != nil && isNotFound(err) {
		return nil
	}
	return err
}

// deleteChain flushes and removes a chain; a chain that is already gone is not an error.
func deleteChain(ctx context.Context, table, chain string) error {
	if _, err := iptables(ctx, "-t", table, "-F", chain); err != nil {
		if isNotFound(err) {
			return nil
		}
		return err
	}
	if _, err := iptables(ctx, "-t", table, "-X", chain); err != nil && !isNotFound(err) {
		return err
	}
	return nil
}

func isNotFound(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "No chain/target/match by that name") ||
		strings.Contains(msg, "does a matching rule exist") ||
		strings.Contains(msg, "Bad rule") ||
		strings.Contains(msg, "No such file or directory")
}

// cniChainName is the plugins' per-container chain name (utils.FormatChainName).
func cniChainName(network, containerID string) string {
	return fmt.Sprintf("CNI-%x", sha512.Sum512([]byte(network+containerID)))[:28]
}

// cniComment is the plugins' per-container rule comment (utils.FormatComment).
func cniComment(network, containerID string) string {
	return fmt.Sprintf("name: %q id: %q", network, containerID)
}

// removeMasqRules removes the bridge plugin's masquerade chain of one container and the
// POSTROUTING rule that jumps to it.
func removeMasqRules(ctx context.Context, network, containerID string) error {
	chain, comment := cniChainName(network, containerID), cniComment(network, containerID)
	_, rules, err := listRules(ctx, "nat")
	if err != nil {
		return fmt.Errorf("remove masquerade rules of %s: %w", containerID, err)
	}
	var errs []error
	for _, r := range rules {
		if r.chain != chain && (r.target() == chain || r.comment() == comment) {
			errs = append(errs, deleteRule(ctx, "nat", r))
		}
	}
	errs = append(errs, deleteChain(ctx, "nat", chain))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove masquerade rules of %s: %w", containerID, err)
	}
	return nil
}

// removeNetworkRules removes, from one table, every rule the plugins tagged with network's
// name and every chain those rules jump to.
func removeNetworkRules(ctx context.Context, table, network string) error {
	tag := fmt.Sprintf("name: %q id: ", network)
	chains, rules, err := listRules(ctx, table)
	if err != nil {
		return err
	}
	owned := map[string]bool{}
	for _, r := range rules {
		if t := r.target(); strings.Contains(r.comment(), tag) && strings.HasPrefix(t, "CNI-") && !isSharedChain(t) {
			owned[t] = true
		}
	}
	var errs []error
	for _, r := range rules {
		if !owned[r.chain] && (owned[r.target()] || strings.Contains(r.comment(), tag)) {
			errs = append(errs, deleteRule(ctx, table, r))
		}
	}
	for _, c := range chains {
		if owned[c] {
			errs = append(errs, deleteChain(ctx, table, c))
		}
	}
	return errors.Join(errs...)
}

// Chains the portmap plugin shares between all networks and containers on the host.
const (
	hostportDNAT    = "CNI-HOSTPORT-DNAT"
	hostportMasq    = "CNI-HOSTPORT-MASQ"
	hostportSetMark = "CNI-HOSTPORT-SETMARK"
)

func isSharedChain(c string) bool {
	return c == hostportDNAT || c == hostportMasq || c == hostportSetMark
}

// removeIdlePortmapChains removes portmap's shared nat chains and their hooks, but only when
// no container of any network uses them any more.
func removeIdlePortmapChains(ctx context.Context) error {
	chains, rules, err := listRules(ctx, "nat")
	if err != nil {
		return err
	}
	if !slices.Contains(chains, hostportDNAT) && !slices.Contains(chains, hostportMasq) && !slices.Contains(chains, hostportSetMark) {
		return nil
	}
	for _, r := range rules {
		if r.chain == hostportDNAT {
			return nil // some container still maps a host port
		}
	}
	var errs []error
	for _, r := range rules {
		if !isSharedChain(r.chain) && isSharedChain(r.target()) {
			errs = append(errs, deleteRule(ctx, "nat", r))
		}
	}
	for _, c := range []string{hostportDNAT, hostportMasq, hostportSetMark} {
		if slices.Contains(chains, c) {
			errs = append(errs, deleteChain(ctx, "nat", c))
		}
	}
	return errors.Join(errs...)
}
