package network

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// testEnv is one isolated network: its own bridge, network name, subnet, netns dir and state.
type testEnv struct {
	m      *Manager
	cidr   *net.IPNet
	suffix string
}

// newTestEnv needs root and the CNI plugins. It snapshots iptables and registers a cleanup
// that removes everything the test created and then checks nothing of it is left.
func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	return newTestEnvWith(t, nil)
}

// newTestEnvWith is newTestEnv with a user-supplied config: userConf, when not nil, renders
// the conflist given the generated one (which the test may extend).
func newTestEnvWith(t testing.TB, userConf func(generated []byte) []byte) *testEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	needPlugins(t)
	b := make([]byte, 3)
	rand.Read(b)
	suffix := hex.EncodeToString(b)
	cidr, ipnet := freeSubnet(t)

	netnsDir := t.TempDir()
	cfg := Config{
		StateDir:    t.TempDir(),
		NetnsDir:    netnsDir,
		BridgeName:  "sktest" + suffix,
		NetworkName: "skiff-test-" + suffix,
	}
	if userConf != nil {
		generated, err := generateConflist(cfg.withDefaults(), cidr)
		if err != nil {
			t.Fatal(err)
		}
		cfg.ConfDir = t.TempDir()
		if err := os.WriteFile(filepath.Join(cfg.ConfDir, "50-user.conflist"), userConf(generated), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetPodCIDR(cidr); err != nil {
		t.Fatal(err)
	}
	before := iptablesSave(t)
	t.Cleanup(func() {
		if err := m.Cleanup(context.Background()); err != nil {
			t.Errorf("Cleanup: %v", err)
		}
		// Netns left by a failed test: unmount so that TempDir removal works.
		entries, _ := os.ReadDir(netnsDir)
		for _, e := range entries {
			m.RemoveNetns(filepath.Join(netnsDir, e.Name()))
		}
		if _, err := os.Stat("/sys/class/net/" + m.cfg.BridgeName); err == nil {
			t.Errorf("bridge %s still exists after Cleanup", m.cfg.BridgeName)
		}
		for _, line := range leftovers(before, iptablesSave(t), m.cfg.NetworkName, m.cfg.BridgeName, cidr) {
			t.Errorf("iptables rule left behind: %s", line)
		}
	})
	return &testEnv{m: m, cidr: ipnet, suffix: suffix}
}

// freeSubnet picks a random 10.<200-249>.x.0/24, clear of the usual pod and service ranges
// and of every subnet on the host's interfaces (other tests' bridges included).
func freeSubnet(t testing.TB) (string, *net.IPNet) {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 2)
	for range 100 {
		rand.Read(b)
		cidr := fmt.Sprintf("10.%d.%d.0/24", 200+int(b[0])%50, b[1])
		_, ipnet, _ := net.ParseCIDR(cidr)
		taken := false
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && (ipnet.Contains(n.IP) || n.Contains(ipnet.IP)) {
				taken = true
			}
		}
		if !taken {
			return cidr, ipnet
		}
	}
	t.Fatal("no free test subnet")
	return "", nil
}

// iptablesSave returns the nat and filter tables without counters and comments.
func iptablesSave(t testing.TB) map[string]bool {
	t.Helper()
	out, err := exec.Command("iptables-save").Output()
	if err != nil {
		t.Fatalf("iptables-save: %v", err)
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if i := strings.Index(l, " ["); strings.HasPrefix(l, ":") && i > 0 {
			l = l[:i]
		}
		lines[l] = true
	}
	return lines
}

// leftovers returns the iptables lines added since before that belong to this test: those
// naming its network, bridge or subnet, CNI chains no remaining rule of another network
// explains, and portmap's shared chains when no other container uses portmap.
func leftovers(before, after map[string]bool, network, bridge, cidr string) []string {
	var added []string
	otherPortmap := false
	for l := range after {
		if strings.HasPrefix(l, "-A CNI-HOSTPORT-DNAT") {
			otherPortmap = true
		}
		if !before[l] {
			added = append(added, l)
		}
	}
	var ours []string
	for _, l := range added {
		switch {
		case strings.Contains(l, network), strings.Contains(l, bridge), strings.Contains(l, cidr):
			ours = append(ours, l)
		case strings.Contains(l, "CNI-HOSTPORT") && !otherPortmap:
			ours = append(ours, l)
		}
	}
	return ours
}

// serveInNetns listens on port inside the netns and answers every connection with msg.
func serveInNetns(t *testing.T, netns string, port int, msg string) {
	t.Helper()
	var ln net.Listener
	err := InNetns(netns, func() error {
		var err error
		ln, err = net.Listen("tcp", fmt.Sprintf("0.0.0.0:%d", port))
		return err
	})
	if err != nil {
		t.Fatalf("listen in netns: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, msg+"\n")
			c.Close()
		}
	}()
}

func dialRead(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// ipamFiles lists the host-local reservations of the network: every file but the lock and
// the last-reserved markers.
func ipamFiles(t testing.TB, m *Manager) []string {
	t.Helper()
	dir := filepath.Join(m.cfg.ipamDataDir(), m.cfg.NetworkName)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, e := range entries {
		if e.Name() == "lock" || strings.HasPrefix(e.Name(), "last_reserved_ip") {
			continue
		}
		ips = append(ips, e.Name())
	}
	return ips
}

func TestPodNetworkLifecycle(t *testing.T) {
	env := newTestEnv(t)
	m := env.m
	ctx := context.Background()

	netns, err := m.CreateNetns("sandbox-" + env.suffix)
	if err != nil {
		t.Fatal(err)
	}
	if !isNetns(netns) {
		t.Fatalf("%s is not a network namespace", netns)
	}
	if _, err := m.CreateNetns("sandbox-" + env.suffix); err == nil {
		t.Error("CreateNetns reused an existing name")
	}

	hostPort := 20000 + int(env.cidr.IP[2])*100 + int(env.cidr.IP[1])%100
	pod := Pod{ID: "sandbox-" + env.suffix, Namespace: "default", Name: "web", UID: "uid-" + env.suffix,
		NetnsPath: netns, Ports: []PortMapping{{HostPort: int32(hostPort), ContainerPort: 8080, Protocol: "TCP"}}}
	res, err := m.Attach(ctx, pod)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if len(res.IPs) == 0 || !env.cidr.Contains(res.IPs[0]) || res.Interface != "eth0" {
		t.Fatalf("Attach result %+v not in %s", res, env.cidr)
	}
	if got := ipamFiles(t, m); len(got) != 1 || got[0] != res.IPs[0].String() {
		t.Errorf("host-local reservations %v, want [%s]", got, res.IPs[0])
	}
	if err := m.Status(ctx, pod); err != nil {
		t.Errorf("Status: %v", err)
	}

	serveInNetns(t, netns, 8080, "hello from "+pod.Name)
	podAddr := net.JoinHostPort(res.IPs[0].String(), "8080")
	if got, err := dialRead(podAddr); err != nil || got != "hello from web" {
		t.Errorf("pod %s from host: %q, %v", podAddr, got, err)
	}
	// The host port reaches the pod through portmap's DNAT (OUTPUT chain, local address).
	gw := make(net.IP, 4)
	copy(gw, env.cidr.IP.To4())
	gw[3] = 1
	hostAddr := net.JoinHostPort(gw.String(), fmt.Sprint(hostPort))
	if got, err := dialRead(hostAddr); err != nil || got != "hello from web" {
		t.Errorf("host port %s: %q, %v", hostAddr, got, err)
	}
	// Loopback is up inside the pod.
	err = InNetns(netns, func() error {
		got, err := dialRead("127.0.0.1:8080")
		if err == nil && got != "hello from web" {
			err = fmt.Errorf("got %q", got)
		}
		return err
	})
	if err != nil {
		t.Errorf("loopback inside the pod: %v", err)
	}

	if err := m.Detach(ctx, pod); err != nil {
		t.Fatalf("Detach: %v", err)
	}
	if got := ipamFiles(t, m); len(got) != 0 {
		t.Errorf("IPs still reserved after Detach: %v", got)
	}
	if err := m.Detach(ctx, pod); err != nil {
		t.Errorf("second Detach: %v", err)
	}
	if err := m.RemoveNetns(netns); err != nil {
		t.Fatalf("RemoveNetns: %v", err)
	}
	if _, err := os.Stat(netns); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("netns %s still there: %v", netns, err)
	}
	if err := m.RemoveNetns(netns); err != nil {
		t.Errorf("second RemoveNetns: %v", err)
	}
}

// TestDetachAfterNetnsGone is the order a crashed runtime leaves things in: the netns is
// gone before CNI DEL. The IP must still be released and no masquerade rule left.
func TestDetachAfterNetnsGone(t *testing.T) {
	env := newTestEnv(t)
	m := env.m
	ctx := context.Background()

	pods := attachPods(t, env, "gone", 2)
	if got := ipamFiles(t, m); len(got) != 2 {
		t.Fatalf("reservations %v, want 2", got)
	}
	for _, pod := range pods {
		if err := m.RemoveNetns(pod.NetnsPath); err != nil {
			t.Fatal(err)
		}
		if err := m.Detach(ctx, pod); err != nil {
			t.Errorf("Detach without netns: %v", err)
		}
	}
	if got := ipamFiles(t, m); len(got) != 0 {
		t.Errorf("IPs still reserved: %v", got)
	}
	_, rules, err := listRules(ctx, "nat")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		// The pod CIDR's masquerade chain belongs to the network, not to a pod.
		if strings.Contains(r.comment(), m.cfg.NetworkName) && !strings.Contains(r.comment(), masqueradeID) {
			t.Errorf("rule left after Detach: -A %s %s", r.chain, strings.Join(r.args, " "))
		}
	}
}

// TestMasqueradeRules: the generated network masquerades its pod CIDR with one chain,
// installed when the config loads, kept right by ensureMasquerade when the CIDR changes,
// and removed by Cleanup.
func TestMasqueradeRules(t *testing.T) {
	env := newTestEnv(t)
	m := env.m
	ctx := context.Background()
	if err := m.Ready(); err != nil {
		t.Fatal(err)
	}
	chain := cniChainName(m.cfg.NetworkName, masqueradeID)
	natRules := func() []string {
		_, rules, err := listRules(ctx, "nat")
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range rules {
			if r.chain == chain || r.target() == chain {
				out = append(out, r.chain+" "+strings.Join(r.args, " "))
			}
		}
		return out
	}
	cidr := m.podCIDR
	want := func(cidr string, others ...string) []string {
		c := fmt.Sprintf("name: %q id: %q", m.cfg.NetworkName, masqueradeID)
		rules := []string{
			"POSTROUTING -s " + cidr + " -m comment --comment " + c + " -j " + chain,
			chain + " -d " + cidr + " -m comment --comment " + c + " -j ACCEPT",
		}
		for _, o := range others {
			rules = append(rules, chain+" -d "+o+" -m comment --comment "+c+" -j ACCEPT")
		}
		return append(rules, chain+" ! -d 224.0.0.0/4 -m comment --comment "+c+" -j MASQUERADE")
	}
	if got := natRules(); !slices.Equal(got, want(cidr)) {
		t.Fatalf("after load: %q\nwant %q", got, want(cidr))
	}
	if err := ensureMasquerade(ctx, m.cfg.NetworkName, cidr, nil); err != nil {
		t.Fatal(err)
	}
	if got := natRules(); !slices.Equal(got, want(cidr)) {
		t.Errorf("ensure twice: %q\nwant %q", got, want(cidr))
	}
	// Other nodes' pod CIDRs are reached without NAT; the list follows the nodes.
	nodes := []string{"10.233.251.0/24", "10.233.252.0/24"}
	if err := m.syncMasquerade(ctx, nodes); err != nil {
		t.Fatal(err)
	}
	if got := natRules(); !slices.Equal(got, want(cidr, nodes...)) {
		t.Errorf("with other nodes: %q\nwant %q", got, want(cidr, nodes...))
	}
	if err := m.syncMasquerade(ctx, nodes[1:]); err != nil {
		t.Fatal(err)
	}
	if got := natRules(); !slices.Equal(got, want(cidr, nodes[1:]...)) {
		t.Errorf("after a node left: %q\nwant %q", got, want(cidr, nodes[1:]...))
	}
	const other = "10.233.250.0/24"
	if err := ensureMasquerade(ctx, m.cfg.NetworkName, other, nil); err != nil {
		t.Fatal(err)
	}
	if got := natRules(); !slices.Equal(got, want(other)) {
		t.Errorf("after CIDR change: %q\nwant %q", got, want(other))
	}
	if err := m.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if got := natRules(); len(got) != 0 {
		t.Errorf("left after Cleanup: %q", got)
	}
}

// TestCleanupAfterLeak checks that Cleanup alone removes what attached pods left behind.
func TestCleanupAfterLeak(t *testing.T) {
	env := newTestEnv(t)
	m := env.m
	id := "leak-" + env.suffix
	netns, err := m.CreateNetns(id)
	if err != nil {
		t.Fatal(err)
	}
	pod := Pod{ID: id, Namespace: "default", Name: id, NetnsPath: netns,
		Ports: []PortMapping{{HostPort: 20999, ContainerPort: 80}}}
	if _, err := m.Attach(context.Background(), pod); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	// Drop the netns without Detach, then let newTestEnv's cleanup run Cleanup and check.
	if err := m.RemoveNetns(netns); err != nil {
		t.Fatal(err)
	}
}

func TestRemoveNetnsRefusesForeignPaths(t *testing.T) {
	m, err := New(Config{StateDir: t.TempDir(), NetnsDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o644)
	if err := m.RemoveNetns(f); err == nil {
		t.Error("RemoveNetns removed a file outside NetnsDir")
	}
	if _, err := os.Stat(f); err != nil {
		t.Errorf("file gone: %v", err)
	}
	if _, err := m.CreateNetns("../escape"); err == nil {
		t.Error("CreateNetns accepted a path")
	}
}

// TestPodsReachEachOther attaches pods concurrently: each gets its own IP, and every pod
// reaches every other one over the bridge.
func TestPodsReachEachOther(t *testing.T) {
	env := newTestEnv(t)
	m := env.m
	ctx := context.Background()
	const n = 4

	pods := make([]Pod, n)
	ips := make([]net.IP, n)
	errs := make(chan error, n)
	for i := range n {
		id := fmt.Sprintf("peer-%s-%d", env.suffix, i)
		netns, err := m.CreateNetns(id)
		if err != nil {
			t.Fatal(err)
		}
		pods[i] = Pod{ID: id, Namespace: "default", Name: id, UID: id, NetnsPath: netns}
		t.Cleanup(func() {
			m.Detach(ctx, pods[i])
			m.RemoveNetns(netns)
		})
	}
	for i := range n {
		go func() {
			res, err := m.Attach(ctx, pods[i])
			if err == nil {
				ips[i] = res.IPs[0]
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("Attach: %v", err)
		}
	}
	seen := map[string]bool{}
	for i, ip := range ips {
		if seen[ip.String()] || !env.cidr.Contains(ip) {
			t.Fatalf("pod %d got %s (all: %v)", i, ip, ips)
		}
		seen[ip.String()] = true
		serveInNetns(t, pods[i].NetnsPath, 9000, pods[i].Name)
	}
	for i := range n {
		for j := range n {
			if i == j {
				continue
			}
			err := InNetns(pods[i].NetnsPath, func() error {
				got, err := dialRead(net.JoinHostPort(ips[j].String(), "9000"))
				if err == nil && got != pods[j].Name {
					err = fmt.Errorf("answered %q", got)
				}
				return err
			})
			if err != nil {
				t.Errorf("pod %d -> pod %d (%s): %v", i, j, ips[j], err)
			}
		}
	}
	for _, pod := range pods {
		if err := m.Detach(ctx, pod); err != nil {
			t.Errorf("Detach: %v", err)
		}
	}
	if got := ipamFiles(t, m); len(got) != 0 {
		t.Errorf("IPs still reserved: %v", got)
	}
}

// TestCleanupWithoutConfig is an uninstall on a node that never got a pod CIDR: nothing to
// remove, and nothing may be written.
func TestCleanupWithoutConfig(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	state := t.TempDir()
	m, err := New(Config{StateDir: state, BinDirs: []string{t.TempDir()}, BridgeName: "sknone0", NetworkName: "skiff-none"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Cleanup(context.Background()); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if entries, _ := os.ReadDir(state); len(entries) != 0 {
		t.Errorf("Cleanup wrote into StateDir: %v", entries)
	}
}

// TestFailedAttachReleasesIP chains a plugin that fails after the bridge plugin has taken an
// IP: Attach must fail and leave no reservation, interface or rule behind.
func TestFailedAttachReleasesIP(t *testing.T) {
	env := newTestEnvWith(t, func(generated []byte) []byte {
		var list map[string]any
		if err := json.Unmarshal(generated, &list); err != nil {
			t.Fatal(err)
		}
		list["plugins"] = append(list["plugins"].([]any), map[string]any{
			"type": "tuning", "sysctl": map[string]string{"net.ipv4.conf.eth0.no_such_setting": "1"},
		})
		out, _ := json.Marshal(list)
		return out
	})
	m := env.m
	if !strings.HasSuffix(mustReady(t, m).ConfigFile(), "50-user.conflist") {
		t.Fatalf("user config not in use: %q", m.ConfigFile())
	}
	id := "fail-" + env.suffix
	netns, err := m.CreateNetns(id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.RemoveNetns(netns) })
	pod := Pod{ID: id, Namespace: "default", Name: id, NetnsPath: netns}
	if _, err := m.Attach(context.Background(), pod); err == nil {
		t.Fatal("Attach succeeded with a failing plugin")
	} else if !strings.Contains(err.Error(), "no_such_setting") {
		t.Errorf("error does not name the cause: %v", err)
	}
	if got := ipamFiles(t, m); len(got) != 0 {
		t.Errorf("IPs still reserved after a failed Attach: %v", got)
	}
	err = InNetns(netns, func() error {
		if _, err := net.InterfaceByName("eth0"); err == nil {
			return errors.New("eth0 still exists")
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func mustReady(t *testing.T, m *Manager) *Manager {
	t.Helper()
	if err := m.Ready(); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	return m
}

// TestSandboxes: what a runtime restarted after a crash finds of its pods' network state.
func TestSandboxes(t *testing.T) {
	env := newTestEnv(t)
	m := env.m
	ctx := context.Background()
	pods := attachPods(t, env, "sbx", 2)
	// The first pod's netns is gone (its runtime died after removing it).
	if err := m.RemoveNetns(pods[0].NetnsPath); err != nil {
		t.Fatal(err)
	}
	// A sandbox whose ADD was cut short after host-local reserved its IP.
	cut := "cut-" + env.suffix
	reservation := filepath.Join(m.cfg.ipamDataDir(), m.cfg.NetworkName, "10.0.0.250")
	if err := os.WriteFile(reservation, []byte(cut+"\neth0"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := m.Sandboxes()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{pods[0].ID: "", pods[1].ID: pods[1].NetnsPath, cut: ""}
	if !maps.Equal(got, want) {
		t.Errorf("Sandboxes() = %v, want %v", got, want)
	}
	if err := os.Remove(reservation); err != nil {
		t.Fatal(err)
	}
	for _, pod := range pods {
		if err := m.Detach(ctx, pod); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.RemoveNetns(pods[1].NetnsPath); err != nil {
		t.Fatal(err)
	}
	if got, err := m.Sandboxes(); err != nil || len(got) != 0 {
		t.Errorf("after Detach: Sandboxes() = %v, %v", got, err)
	}
}

// attachPods makes count pods named <prefix>-<suffix>-<i>, each with a netns and attached.
func attachPods(t *testing.T, env *testEnv, prefix string, count int) []Pod {
	t.Helper()
	var pods []Pod
	for i := range count {
		id := fmt.Sprintf("%s-%s-%d", prefix, env.suffix, i)
		netns, err := env.m.CreateNetns(id)
		if err != nil {
			t.Fatal(err)
		}
		pod := Pod{ID: id, Namespace: "default", Name: id, UID: id, NetnsPath: netns}
		if _, err := env.m.Attach(context.Background(), pod); err != nil {
			t.Fatalf("Attach %s: %v", id, err)
		}
		pods = append(pods, pod)
	}
	return pods
}
