package app

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/skiff-sh/skiff/agent"
	"github.com/skiff-sh/skiff/network"
)

// Defaults every flag falls back to. Two instances on one host need a different
// --data-dir, --run-dir, ports, --bridge-name and --pod-cidr.
const (
	defaultDataDir    = "/var/lib/skiff"
	defaultRunDir     = "/run/skiff"
	defaultPodCIDR    = "10.244.0.0/24"
	defaultBridgeName = "skiff0"
)

// Options holds every flag of every subcommand; each subcommand registers the groups it uses.
type Options struct {
	DataDir string
	RunDir  string

	// control plane
	KubeconfigOut  string
	APIServerPort  int
	BindAddress    string
	EtcdServers    []string
	EtcdClientPort int
	EtcdPeerPort   int

	// node
	Kubeconfig      string
	NodeName        string
	NodeIP          string
	PodCIDR         string
	KubeletPort     int
	RuntimeEndpoint string

	// image pulls; ImagePullSlowTimeout 0 disables the slow-pull check (see imagePullConfig)
	ImagePullMinBytesPerSecond int64
	ImagePullSlowTimeout       time.Duration

	// container log rotation, kubelet's flags of the same names
	ContainerLogMaxSize         string
	ContainerLogMaxFiles        int
	ContainerLogMonitorInterval time.Duration
	ContainerLogMaxWorkers      int

	// runtime
	CRISocket          string
	Containerd         string
	ContainerdBinary   string
	ContainerdNS       string
	RegistryConfig     string
	PauseImage         string
	AlwaysPause        bool
	CNIConfDir         string
	CNIBinDirs         []string
	BridgeName         string
	DisableControllers bool
}

func newOptions() *Options {
	hostname, _ := os.Hostname()
	return &Options{
		DataDir:          defaultDataDir,
		RunDir:           defaultRunDir,
		APIServerPort:    6443,
		BindAddress:      "0.0.0.0",
		EtcdClientPort:   2379,
		EtcdPeerPort:     2380,
		NodeName:         hostname,
		PodCIDR:          defaultPodCIDR,
		KubeletPort:      10250,
		ContainerdBinary: "containerd",
		ContainerdNS:     "skiff",
		PauseImage:       "registry.k8s.io/pause:3.10",
		CNIBinDirs:       []string{"/usr/lib/cni", "/opt/cni/bin"},
		BridgeName:       defaultBridgeName,
	}
}

func (o *Options) addCommonFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.DataDir, "data-dir", o.DataDir, "directory for etcd data, certificates, pod logs and runtime state")
	fs.StringVar(&o.RunDir, "run-dir", o.RunDir, "directory for sockets, network namespaces and other state that does not survive a reboot")
}

func (o *Options) addServerFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.KubeconfigOut, "kubeconfig-out", "", "where to write the admin kubeconfig (default <data-dir>/admin.kubeconfig)")
	fs.IntVar(&o.APIServerPort, "apiserver-port", o.APIServerPort, "HTTPS port of the apiserver")
	fs.StringVar(&o.BindAddress, "bind-address", o.BindAddress, "address the apiserver listens on")
	fs.StringSliceVar(&o.EtcdServers, "etcd-servers", nil, "external etcd client URLs; empty runs an embedded etcd")
	fs.IntVar(&o.EtcdClientPort, "etcd-client-port", o.EtcdClientPort, "client port of the embedded etcd (127.0.0.1 only)")
	fs.IntVar(&o.EtcdPeerPort, "etcd-peer-port", o.EtcdPeerPort, "peer port of the embedded etcd (127.0.0.1 only)")
}

func (o *Options) addAgentFlags(fs *pflag.FlagSet, standalone bool) {
	if standalone {
		fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig the agent uses to reach the apiserver")
		fs.StringVar(&o.RuntimeEndpoint, "container-runtime-endpoint", "", "CRI endpoint of another runtime (unix://...); empty runs skiff's CRI server in-process")
	}
	fs.StringVar(&o.NodeName, "node-name", o.NodeName, "name of this node")
	fs.StringVar(&o.NodeIP, "node-ip", "", "IP address the node advertises (default: first non-loopback IPv4)")
	fs.StringVar(&o.PodCIDR, "pod-cidr", o.PodCIDR, "pod IP range of this node")
	fs.IntVar(&o.KubeletPort, "kubelet-port", o.KubeletPort, "port of the agent's kubelet API")
	fs.Int64Var(&o.ImagePullMinBytesPerSecond, "image-pull-min-bytes-per-second", agent.DefaultImagePullMinBytesPerSecond,
		"throughput floor of an image pull (see --image-pull-slow-timeout)")
	fs.DurationVar(&o.ImagePullSlowTimeout, "image-pull-slow-timeout", agent.DefaultImagePullSlowTimeout,
		"cancel an image pull that stays under --image-pull-min-bytes-per-second this long, and retry it with back-off; 0 disables")
	fs.StringVar(&o.ContainerLogMaxSize, "container-log-max-size", "10Mi", "a container log this large is rotated (a quantity: 10Mi, 1G)")
	fs.IntVar(&o.ContainerLogMaxFiles, "container-log-max-files", agent.DefaultContainerLogMaxFiles,
		"log files kept per container, the current one included (at least 2)")
	fs.DurationVar(&o.ContainerLogMonitorInterval, "container-log-monitor-interval", agent.DefaultContainerLogMonitorInterval,
		"how often container log sizes are checked")
	fs.IntVar(&o.ContainerLogMaxWorkers, "container-log-max-workers", agent.DefaultContainerLogMaxWorkers,
		"containers whose logs are rotated at once")
}

// logRotation is the agent's LogRotation from the container-log flags.
func (o *Options) logRotation() (agent.LogRotation, error) {
	size, err := resource.ParseQuantity(o.ContainerLogMaxSize)
	if err != nil || size.Sign() <= 0 {
		return agent.LogRotation{}, fmt.Errorf("--container-log-max-size %q: want a positive quantity such as 10Mi", o.ContainerLogMaxSize)
	}
	return agent.LogRotation{MaxSize: size.Value(), MaxFiles: o.ContainerLogMaxFiles,
		MonitorInterval: o.ContainerLogMonitorInterval, Workers: o.ContainerLogMaxWorkers}, nil
}

// imagePullConfig is the agent's ImagePull. The flag's 0 disables the slow-pull check,
// which agent.Config spells as a negative SlowTimeout (its 0 takes the default).
func (o *Options) imagePullConfig() agent.ImagePullConfig {
	cfg := agent.ImagePullConfig{MinBytesPerSecond: o.ImagePullMinBytesPerSecond, SlowTimeout: o.ImagePullSlowTimeout}
	if cfg.SlowTimeout == 0 {
		cfg.SlowTimeout = -1
	}
	return cfg
}

func (o *Options) addRuntimeFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.CRISocket, "cri-socket", "", "unix socket the CRI server listens on (default <run-dir>/cri.sock)")
	fs.StringVar(&o.Containerd, "containerd", "", "socket of a running containerd; empty starts a child containerd with a generated config")
	fs.StringVar(&o.ContainerdBinary, "containerd-binary", o.ContainerdBinary, "containerd executable for the child containerd")
	fs.StringVar(&o.ContainerdNS, "containerd-namespace", o.ContainerdNS, "containerd namespace holding skiff's pods and images")
	fs.StringVar(&o.RegistryConfig, "registry-config", "", "directory of registry host configs in containerd's hosts.toml layout (<host>/hosts.toml)")
	fs.StringVar(&o.PauseImage, "pause-image", o.PauseImage, "name under which the built-in pause image is imported")
	fs.BoolVar(&o.AlwaysPause, "always-pause", false, "run a pause container in every pod sandbox, as containerd's CRI does; "+
		"by default only pods that share one PID namespace get one, and the others keep their namespaces in bind mounts")
	fs.StringVar(&o.CNIConfDir, "cni-conf-dir", "", "directory with a CNI conflist to use instead of the generated one")
	fs.StringSliceVar(&o.CNIBinDirs, "cni-bin-dir", o.CNIBinDirs, "directories searched for CNI plugins")
	fs.StringVar(&o.BridgeName, "bridge-name", o.BridgeName, "name of the pod bridge of the generated CNI config")
}

// complete fills the defaults that derive from other flags and checks the values.
func (o *Options) complete() error {
	if o.DataDir == "" || o.RunDir == "" {
		return fmt.Errorf("--data-dir and --run-dir must not be empty")
	}
	var err error
	if o.DataDir, err = filepath.Abs(o.DataDir); err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	if o.RunDir, err = filepath.Abs(o.RunDir); err != nil {
		return fmt.Errorf("--run-dir: %w", err)
	}
	if o.KubeconfigOut == "" {
		o.KubeconfigOut = filepath.Join(o.DataDir, "admin.kubeconfig")
	}
	if o.CRISocket == "" {
		o.CRISocket = filepath.Join(o.RunDir, "cri.sock")
	}
	if o.PodCIDR != "" {
		if _, _, err := net.ParseCIDR(o.PodCIDR); err != nil {
			return fmt.Errorf("--pod-cidr %q: %w", o.PodCIDR, err)
		}
	}
	if o.NodeName == "" {
		return fmt.Errorf("--node-name must not be empty (the hostname could not be read)")
	}
	for _, p := range []struct {
		name string
		port int
	}{{"--apiserver-port", o.APIServerPort}, {"--etcd-client-port", o.EtcdClientPort}, {"--etcd-peer-port", o.EtcdPeerPort}, {"--kubelet-port", o.KubeletPort}} {
		if p.port <= 0 || p.port > 65535 {
			return fmt.Errorf("%s %d: must be between 1 and 65535", p.name, p.port)
		}
	}
	return nil
}

// Paths derived from the data and run dirs, one place so that `skiff reset` finds them too.
func (o *Options) pkiDir() string          { return filepath.Join(o.DataDir, "pki") }
func (o *Options) etcdDir() string         { return filepath.Join(o.DataDir, "etcd") }
func (o *Options) podLogsDir() string      { return filepath.Join(o.DataDir, "pods") }
func (o *Options) criRootDir() string      { return filepath.Join(o.DataDir, "cri") }
func (o *Options) criStateDir() string     { return filepath.Join(o.RunDir, "cri") }
func (o *Options) networkStateDir() string { return filepath.Join(o.DataDir, "network") }
func (o *Options) netnsDir() string        { return filepath.Join(o.RunDir, "netns") }
func (o *Options) containerdRoot() string  { return filepath.Join(o.DataDir, "containerd") }
func (o *Options) containerdState() string { return filepath.Join(o.RunDir, "containerd") }
func (o *Options) containerdSocket() string {
	return filepath.Join(o.RunDir, "containerd", "containerd.sock")
}
func (o *Options) agentRootDir() string { return filepath.Join(o.DataDir, "agent") }

// networkConfig is the pod network of this node. The CNI network is named after the
// bridge: plugins tag their iptables rules with the network name, and a cleanup of one
// node must never match another node's rules on the same host.
func (o *Options) networkConfig() network.Config {
	return network.Config{
		ConfDir:     o.CNIConfDir,
		BinDirs:     o.CNIBinDirs,
		StateDir:    o.networkStateDir(),
		NetnsDir:    o.netnsDir(),
		BridgeName:  o.BridgeName,
		NetworkName: o.BridgeName,
		PodCIDR:     o.PodCIDR,
	}
}

func (o *Options) nodeKubeconfig() string    { return filepath.Join(o.agentRootDir(), "kubeconfig") }
func (o *Options) agentClientCAFile() string { return filepath.Join(o.agentRootDir(), "client-ca.crt") }
