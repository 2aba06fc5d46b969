package network

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
)

func TestConfigDefaultsAndValidation(t *testing.T) {
	m, err := New(Config{StateDir: "/tmp/x"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	want := Config{StateDir: "/tmp/x", BinDirs: []string{DefaultBinDir}, NetnsDir: DefaultNetnsDir,
		BridgeName: DefaultBridgeName, NetworkName: DefaultNetworkName}
	if !reflect.DeepEqual(m.cfg, want) {
		t.Errorf("defaults: got %+v, want %+v", m.cfg, want)
	}

	bad := []Config{
		{},                                // no StateDir
		{StateDir: "rel"},                 // relative
		{StateDir: "/s", NetnsDir: "rel"}, // relative
		{StateDir: "/s", BinDirs: []string{"bin"}},
		{StateDir: "/s", BridgeName: "a-bridge-name-too-long"},
		{StateDir: "/s", NetworkName: "-bad"},
		{StateDir: "/s", PodCIDR: "10.1.0.0"},
		{StateDir: "/s", PodCIDR: "fd00::/64"},
		{StateDir: "/s", PodCIDR: "10.1.0.0/31"},
	}
	for _, c := range bad {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted an invalid config", c)
		}
	}
}

func TestGenerateConflist(t *testing.T) {
	cfg := Config{StateDir: "/var/lib/skiff/cni", BridgeName: "br-x", NetworkName: "net-x"}.withDefaults()
	data, err := generateConflist(cfg, "10.244.3.0/24")
	if err != nil {
		t.Fatal(err)
	}
	list, err := libcni.NetworkConfFromBytes(data)
	if err != nil {
		t.Fatalf("libcni rejects the generated conflist: %v\n%s", err, data)
	}
	if list.Name != "net-x" || list.CNIVersion != "1.0.0" || len(list.Plugins) != 2 {
		t.Fatalf("unexpected list: name %q version %q plugins %d", list.Name, list.CNIVersion, len(list.Plugins))
	}
	var bridge struct {
		Bridge      string `json:"bridge"`
		IsGateway   bool   `json:"isGateway"`
		IPMasq      bool   `json:"ipMasq"`
		HairpinMode bool   `json:"hairpinMode"`
		IPAM        struct {
			Type    string                `json:"type"`
			DataDir string                `json:"dataDir"`
			Ranges  [][]map[string]string `json:"ranges"`
			Routes  []map[string]string   `json:"routes"`
		} `json:"ipam"`
	}
	if err := json.Unmarshal(list.Plugins[0].Bytes, &bridge); err != nil {
		t.Fatal(err)
	}
	if list.Plugins[0].Network.Type != "bridge" || bridge.Bridge != "br-x" || !bridge.IsGateway || bridge.IPMasq || !bridge.HairpinMode {
		t.Errorf("bridge plugin: %s", list.Plugins[0].Bytes)
	}
	if bridge.IPAM.Type != "host-local" || bridge.IPAM.DataDir != "/var/lib/skiff/cni/ipam" ||
		bridge.IPAM.Ranges[0][0]["subnet"] != "10.244.3.0/24" || bridge.IPAM.Routes[0]["dst"] != "0.0.0.0/0" {
		t.Errorf("ipam: %+v", bridge.IPAM)
	}
	if p := list.Plugins[1].Network; p.Type != "portmap" || !p.Capabilities["portMappings"] {
		t.Errorf("portmap plugin: %s", list.Plugins[1].Bytes)
	}
}

func TestSplitRule(t *testing.T) {
	line := `-A POSTROUTING -s 10.1.0.2/32 -m comment --comment "name: \"skiff\" id: \"abc\"" -j CNI-0123`
	got, err := splitRule(line)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"-A", "POSTROUTING", "-s", "10.1.0.2/32", "-m", "comment", "--comment", `name: "skiff" id: "abc"`, "-j", "CNI-0123"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("splitRule:\n got %q\nwant %q", got, want)
	}
	r := rule{chain: got[1], args: got[2:]}
	if r.target() != "CNI-0123" || r.comment() != cniComment("skiff", "abc") {
		t.Errorf("target %q comment %q", r.target(), r.comment())
	}
	if _, err := splitRule(`-A X --comment "open`); err == nil {
		t.Error("unterminated quote accepted")
	}
}

func TestCNIChainName(t *testing.T) {
	// The plugins' name for network "skiff" and container "abc": "CNI-" + the first 24 hex
	// digits of sha512("skiffabc").
	got := cniChainName("skiff", "abc")
	if len(got) != 28 || !strings.HasPrefix(got, "CNI-") {
		t.Errorf("chain name %q", got)
	}
	if got == cniChainName("skiff", "abd") {
		t.Error("chain names collide")
	}
}

func TestPortMappings(t *testing.T) {
	got := portMappings([]PortMapping{
		{HostPort: 8080, ContainerPort: 80, Protocol: "TCP"},
		{ContainerPort: 81}, // no host port: not mapped
		{HostPort: 53, ContainerPort: 53, Protocol: "UDP", HostIP: "127.0.0.1"},
	})
	want := []portMapping{
		{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"},
		{HostPort: 53, ContainerPort: 53, Protocol: "udp", HostIP: "127.0.0.1"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// needPlugins skips tests that load configs (and so validate their plugins) on hosts
// without the CNI plugins.
func needPlugins(t testing.TB) {
	t.Helper()
	for _, p := range []string{"bridge", "host-local", "portmap", "loopback"} {
		if _, err := os.Stat(filepath.Join(DefaultBinDir, p)); err != nil {
			t.Skipf("CNI plugin %s not installed: %v", p, err)
		}
	}
}

func TestReadyNamesMissingPlugins(t *testing.T) {
	m, err := New(Config{StateDir: t.TempDir(), BinDirs: []string{t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	err = m.SetPodCIDR("10.250.0.0/24")
	if err == nil || !strings.Contains(err.Error(), "bridge") {
		t.Errorf("SetPodCIDR with no plugins: %v, want an error naming the bridge plugin", err)
	}
	if err := m.Ready(); err == nil {
		t.Error("Ready with no plugins")
	}
}

// unitConfig is a Config of the test's own: loading a generated network installs its
// masquerade chain on the host, so the test names the network and bridge after itself
// (never the defaults a real node on this host may use) and cleans up after its managers.
func unitConfig(t *testing.T, cfg Config) Config {
	t.Helper()
	suffix := fmt.Sprintf("%06x", rand.IntN(1<<24))
	cfg.NetworkName, cfg.BridgeName = "skiff-unit-"+suffix, "skunit"+suffix
	t.Cleanup(func() {
		m, err := New(cfg)
		if err == nil {
			err = m.Cleanup(context.Background())
		}
		if err != nil {
			t.Errorf("cleanup of network %s: %v", cfg.NetworkName, err)
		}
	})
	return cfg
}

func TestReadyAndSetPodCIDR(t *testing.T) {
	needPlugins(t)
	state := t.TempDir()
	cfg := unitConfig(t, Config{StateDir: state})
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Ready(); err == nil {
		t.Fatal("Ready before any config")
	}
	if err := m.SetPodCIDR("10.250.1.7/24"); err != nil {
		t.Fatal(err)
	}
	if err := m.Ready(); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if got, want := m.ConfigFile(), state+"/net.d/10-"+cfg.NetworkName+".conflist"; got != want {
		t.Errorf("config file %q, want %q", got, want)
	}

	// A restarted manager finds the generated conflist without a new SetPodCIDR.
	m2, _ := New(cfg)
	if err := m2.Ready(); err != nil {
		t.Errorf("Ready after restart: %v", err)
	}

	// A user-supplied config wins over the generated one.
	confDir := t.TempDir()
	user := `{"cniVersion":"1.0.0","name":"mine","type":"bridge","bridge":"mybr0","ipam":{"type":"host-local","subnet":"10.251.0.0/24"}}`
	if err := writeFileAtomic(confDir+"/05-mine.conf", []byte(user)); err != nil {
		t.Fatal(err)
	}
	m3, _ := New(Config{StateDir: t.TempDir(), ConfDir: confDir})
	if err := m3.SetPodCIDR("10.250.2.0/24"); err != nil {
		t.Fatal(err)
	}
	list, err := m3.network()
	if err != nil || list.Name != "mine" || bridgeOf(list.Bytes) != "mybr0" {
		t.Errorf("user config not used: %v %+v", err, list)
	}

	// Config.PodCIDR is applied lazily.
	m4, _ := New(unitConfig(t, Config{StateDir: t.TempDir(), PodCIDR: "10.250.3.0/24"}))
	if err := m4.Ready(); err != nil {
		t.Errorf("Ready with Config.PodCIDR: %v", err)
	}
}

func TestConvertResult(t *testing.T) {
	raw := []byte(`{"cniVersion":"1.0.0","interfaces":[{"name":"br0"},{"name":"veth1"},{"name":"eth0","sandbox":"/run/netns/x"}],
	"ips":[{"interface":2,"address":"fd00::5/64"},{"interface":0,"address":"10.0.0.1/24"},{"interface":2,"address":"10.0.0.5/24","gateway":"10.0.0.1"}]}`)
	r, err := libcniResult(raw)
	if err != nil {
		t.Fatal(err)
	}
	res, err := convertResult(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.IPs) != 2 || !res.IPs[0].Equal(net.ParseIP("10.0.0.5")) || !res.IPs[1].Equal(net.ParseIP("fd00::5")) || res.Interface != "eth0" {
		t.Errorf("got %+v", res)
	}
}
