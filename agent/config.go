package agent

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"k8s.io/client-go/kubernetes"
	internalapi "k8s.io/cri-api/pkg/apis"
)

// Defaults for the optional Config fields; they match the kubelet's where kubelet has one.
const (
	DefaultRootDir                   = "/var/lib/skiff/agent"
	DefaultKubeletPort               = 10250
	DefaultLeaseDurationSeconds      = 40
	DefaultNodeStatusUpdateFrequency = 10 * time.Second
	DefaultMaxPods                   = 110
	DefaultResolvConf                = "/etc/resolv.conf"
	DefaultCgroupRoot                = "/kubepods"

	// KubeletVersion is what the Node reports as status.nodeInfo.kubeletVersion.
	KubeletVersion = "v1.37.2-skiff"
)

// Config is everything the agent needs. NodeName, Client, Runtime and Images are required.
type Config struct {
	// NodeName is the name of the Node object this agent registers and serves.
	NodeName string
	// Client talks to the apiserver.
	Client kubernetes.Interface
	// EventClient, when set, carries the agent's events, so that a burst of events does
	// not queue pod status writes behind it under the client's rate limit (kubelet's
	// separate event client with EventRecordQPS). Default: Client.
	EventClient kubernetes.Interface
	// LeaseClient, when set, renews the node Lease, so that heartbeats do not wait behind
	// pod status writes under the client's rate limit (kubelet's heartbeat client).
	// Default: Client.
	LeaseClient kubernetes.Interface
	// Runtime and Images are the CRI services (remote or in-process).
	Runtime internalapi.RuntimeService
	Images  internalapi.ImageManagerService

	// PodCIDR is written to spec.podCIDR(s) and handed to the runtime with
	// UpdateRuntimeConfig. Empty means: use what the Node already carries (node IPAM).
	PodCIDR string
	// NodeIP is the node's InternalIP. Default: the first non-loopback IPv4 of the host.
	NodeIP string
	// RootDir holds per-pod state (termination-message files, emptyDir volumes), like
	// kubelet's --root-dir. Default DefaultRootDir.
	RootDir string
	// PodLogsDir is where the CRI log directories go (kubelet's /var/log/pods).
	// Default: <RootDir>/pod-logs.
	PodLogsDir string
	// KubeletPort is where the kubelet API listens (all addresses), published in
	// status.daemonEndpoints. Default DefaultKubeletPort.
	KubeletPort int
	// LeaseDurationSeconds of the node Lease; it is renewed every quarter of it. Default 40.
	LeaseDurationSeconds int32
	// NodeStatusUpdateFrequency is how often node status is computed. Default 10s.
	NodeStatusUpdateFrequency time.Duration
	// CgroupRoot is where pod cgroups go (kubelet's "kubepods" with the cgroupfs driver):
	// <CgroupRoot>[/burstable|/besteffort]/pod<uid>. Default DefaultCgroupRoot.
	CgroupRoot string
	// ResolvConf is the host resolver file used for pods without cluster DNS.
	// Default DefaultResolvConf.
	ResolvConf string

	// The kubelet API (logs, exec, attach, port-forward) on KubeletPort. ServingCertFile
	// and ServingKeyFile are its TLS identity; without them a self-signed certificate for
	// NodeName and NodeIP is made at start. ClientCAFile authenticates callers (the
	// apiserver's kubelet client certificate): without it only /healthz is served.
	ServingCertFile string
	ServingKeyFile  string
	ClientCAFile    string

	// LogRotation rotates container logs (container_log_manager.go); zero fields take defaults.
	LogRotation LogRotation

	// Pressure sets the thresholds of the MemoryPressure, DiskPressure and PIDPressure
	// node conditions (kubelet's hard eviction defaults) and where their signals come from.
	Pressure PressureConfig

	// ImagePull shows pull progress and cancels pulls that stay too slow (pull_progress.go).
	ImagePull ImagePullConfig
}

// validate checks the required fields and fills in defaults. It works on a copy held by the Agent.
func (c *Config) validate() error {
	var errs []error
	if c.NodeName == "" {
		errs = append(errs, errors.New("NodeName is required"))
	}
	if c.Client == nil {
		errs = append(errs, errors.New("Client is required"))
	}
	if c.Runtime == nil {
		errs = append(errs, errors.New("Runtime is required"))
	}
	if c.Images == nil {
		errs = append(errs, errors.New("Images is required"))
	}
	if c.KubeletPort < 0 || c.KubeletPort > 65535 {
		errs = append(errs, fmt.Errorf("KubeletPort %d out of range", c.KubeletPort))
	}
	if c.LeaseDurationSeconds < 0 {
		errs = append(errs, fmt.Errorf("LeaseDurationSeconds %d must not be negative", c.LeaseDurationSeconds))
	}
	if c.CgroupRoot != "" && !filepath.IsAbs(c.CgroupRoot) {
		errs = append(errs, fmt.Errorf("CgroupRoot %q must be an absolute cgroup path", c.CgroupRoot))
	}
	if (c.ServingCertFile == "") != (c.ServingKeyFile == "") {
		errs = append(errs, errors.New("ServingCertFile and ServingKeyFile go together"))
	}
	if c.NodeStatusUpdateFrequency < 0 {
		errs = append(errs, fmt.Errorf("NodeStatusUpdateFrequency %v must not be negative", c.NodeStatusUpdateFrequency))
	}
	if err := c.LogRotation.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Pressure.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.ImagePull.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid agent config: %w", err)
	}
	return c.setDefaults()
}

func (c *Config) setDefaults() error {
	if c.RootDir == "" {
		c.RootDir = DefaultRootDir
	}
	if c.PodLogsDir == "" {
		c.PodLogsDir = filepath.Join(c.RootDir, "pod-logs")
	}
	if c.KubeletPort == 0 {
		c.KubeletPort = DefaultKubeletPort
	}
	if c.LeaseDurationSeconds == 0 {
		c.LeaseDurationSeconds = DefaultLeaseDurationSeconds
	}
	if c.NodeStatusUpdateFrequency == 0 {
		c.NodeStatusUpdateFrequency = DefaultNodeStatusUpdateFrequency
	}
	if c.CgroupRoot == "" {
		c.CgroupRoot = DefaultCgroupRoot
	}
	if c.ResolvConf == "" {
		c.ResolvConf = DefaultResolvConf
	}
	c.Pressure.setDefaults()
	if c.EventClient == nil {
		c.EventClient = c.Client
	}
	if c.LeaseClient == nil {
		c.LeaseClient = c.Client
	}
	if c.NodeIP == "" {
		ip, err := firstHostIPv4()
		if err != nil {
			return fmt.Errorf("invalid agent config: NodeIP not set and none found: %w", err)
		}
		c.NodeIP = ip
	}
	return nil
}
