package network

import (
	"context"
	"net"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

// TestSyncRoutes runs inside a netns of its own, so the host's routes are
// never touched.
func TestSyncRoutes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	m, err := New(Config{StateDir: t.TempDir(), NetnsDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	netns, err := m.CreateNetns("routes")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.RemoveNetns(netns) })
	ipIn := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("nsenter", append([]string{"--net=" + netns, "ip"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
		return string(out)
	}
	// A veth pair stands in for the node's uplink (this kernel has no dummy links).
	ipIn("link", "add", "node0", "type", "veth", "peer", "name", "node0p")
	ipIn("addr", "add", "192.0.2.1/24", "dev", "node0")
	ipIn("link", "set", "node0p", "up")
	ipIn("link", "set", "node0", "up")
	ipIn("route", "add", "10.99.3.0/24", "via", "192.0.2.13", "proto", "static") // not ours

	ctx := context.Background()
	sync := func(routes ...Route) {
		t.Helper()
		if err := InNetns(netns, func() error { return m.SyncRoutes(ctx, routes) }); err != nil {
			t.Fatalf("SyncRoutes(%v): %v", routes, err)
		}
	}
	routes := func(proto string) []string {
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(ipIn("route", "show", "proto", proto)), "\n") {
			if l != "" {
				lines = append(lines, strings.Join(strings.Fields(l), " "))
			}
		}
		sort.Strings(lines)
		return lines
	}
	expect := func(proto string, want ...string) {
		t.Helper()
		got := routes(proto)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("proto %s routes:\n got %q\nwant %q", proto, got, want)
		}
	}

	sync(Route{Dst: "10.99.1.0/24", Via: net.ParseIP("192.0.2.10")}, Route{Dst: "10.99.2.7/24", Via: net.ParseIP("192.0.2.11")})
	expect("197", "10.99.1.0/24 via 192.0.2.10 dev node0", "10.99.2.0/24 via 192.0.2.11 dev node0")

	sync(Route{Dst: "10.99.1.0/24", Via: net.ParseIP("192.0.2.12")})
	expect("197", "10.99.1.0/24 via 192.0.2.12 dev node0")

	sync()
	expect("197")
	expect("static", "10.99.3.0/24 via 192.0.2.13 dev node0")

	if err := m.SyncRoutes(ctx, []Route{{Dst: "fd00::/64", Via: net.ParseIP("192.0.2.1")}}); err == nil {
		t.Error("SyncRoutes accepted an IPv6 CIDR")
	}
	if err := InNetns(netns, func() error {
		return m.SyncRoutes(ctx, []Route{{Dst: "10.99.4.0/24", Via: net.ParseIP("198.51.100.1")}})
	}); err == nil {
		t.Error("SyncRoutes accepted an unreachable gateway")
	}
}
