package network

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultBinDir      = "/usr/lib/cni"
	DefaultNetnsDir    = "/run/skiff/netns"
	DefaultBridgeName  = "skiff0"
	DefaultNetworkName = "skiff"
)

// Config says where the network manager keeps its files and what it names things.
// Every path is explicit so that two managers (tests, a multi-node lab) can share a host.
type Config struct {
	// ConfDir is a user-supplied CNI config directory. When it holds a .conflist, .conf or
	// .json file, the first one in lexical order is used as is and SetPodCIDR writes nothing.
	ConfDir string
	// BinDirs are searched for CNI plugin binaries. Default: [DefaultBinDir].
	BinDirs []string
	// StateDir holds the generated conflist (net.d/), host-local's IPAM data (ipam/) and
	// libcni's result cache (cache/). Required.
	StateDir string
	// NetnsDir is where CreateNetns bind-mounts pod network namespaces. Default: DefaultNetnsDir.
	NetnsDir string
	// BridgeName is the Linux bridge of the generated network. Default: DefaultBridgeName.
	BridgeName string
	// NetworkName is the CNI network name of the generated conflist; plugins tag their
	// iptables rules with it. Default: DefaultNetworkName.
	NetworkName string
	// PodCIDR, when set, is applied as by SetPodCIDR on the first use of the manager.
	PodCIDR string
}

// linuxIfNameMax is IFNAMSIZ-1: the longest interface name the kernel accepts.
const linuxIfNameMax = 15

// cniNameRE is the CNI spec's rule for network names.
var cniNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`)

// withDefaults returns a copy of c with defaults filled in and every path made absolute.
func (c Config) withDefaults() Config {
	if len(c.BinDirs) == 0 {
		c.BinDirs = []string{DefaultBinDir}
	} else {
		c.BinDirs = append([]string(nil), c.BinDirs...)
	}
	if c.NetnsDir == "" {
		c.NetnsDir = DefaultNetnsDir
	}
	if c.BridgeName == "" {
		c.BridgeName = DefaultBridgeName
	}
	if c.NetworkName == "" {
		c.NetworkName = DefaultNetworkName
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	if c.StateDir == "" {
		errs = append(errs, errors.New("StateDir is required"))
	}
	for name, dir := range map[string]string{"StateDir": c.StateDir, "NetnsDir": c.NetnsDir, "ConfDir": c.ConfDir} {
		if dir != "" && !filepath.IsAbs(dir) {
			errs = append(errs, fmt.Errorf("%s %q must be an absolute path", name, dir))
		}
	}
	for _, dir := range c.BinDirs {
		if !filepath.IsAbs(dir) {
			errs = append(errs, fmt.Errorf("BinDirs entry %q must be an absolute path", dir))
		}
	}
	if len(c.BridgeName) > linuxIfNameMax {
		errs = append(errs, fmt.Errorf("BridgeName %q is longer than %d bytes", c.BridgeName, linuxIfNameMax))
	}
	if !cniNameRE.MatchString(c.NetworkName) {
		errs = append(errs, fmt.Errorf("NetworkName %q is not a valid CNI network name", c.NetworkName))
	}
	if c.PodCIDR != "" {
		if _, err := parsePodCIDR(c.PodCIDR); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// parsePodCIDR accepts an IPv4 network in CIDR notation with room for a gateway and pods.
func parsePodCIDR(cidr string) (*net.IPNet, error) {
	ip, ipnet, err := net.ParseCIDR(cidr)
	if err != nil {
		return nil, fmt.Errorf("pod CIDR %q: %w", cidr, err)
	}
	if ip.To4() == nil {
		return nil, fmt.Errorf("pod CIDR %q: only IPv4 is supported", cidr)
	}
	if ones, _ := ipnet.Mask.Size(); ones > 30 {
		return nil, fmt.Errorf("pod CIDR %q: prefix /%d leaves no room for pods", cidr, ones)
	}
	return ipnet, nil
}

func (c Config) generatedConfDir() string { return filepath.Join(c.StateDir, "net.d") }
func (c Config) generatedConfFile() string {
	return filepath.Join(c.generatedConfDir(), "10-"+c.NetworkName+".conflist")
}
func (c Config) ipamDataDir() string { return filepath.Join(c.StateDir, "ipam") }
func (c Config) cacheDir() string    { return filepath.Join(c.StateDir, "cache") }
