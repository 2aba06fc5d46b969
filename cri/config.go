package cri

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"

	"github.com/skiff-sh/skiff/network"
)

// Network is what the CRI server needs from pod networking; *network.Manager implements it.
type Network interface {
	// SetPodCIDR (re)writes the network configuration for the node's pod CIDR.
	SetPodCIDR(cidr string) error
	// Ready reports nil once a network configuration is loaded, else why not.
	Ready() error
	// CreateNetns creates a named network namespace for a sandbox and returns its path.
	CreateNetns(sandboxID string) (string, error)
	// Attach runs CNI ADD for a pod.
	Attach(ctx context.Context, pod network.Pod) (*network.Result, error)
	// Detach runs CNI DEL for a pod; it is idempotent.
	Detach(ctx context.Context, pod network.Pod) error
	// RemoveNetns unmounts and removes a namespace created by CreateNetns; it is idempotent.
	RemoveNetns(path string) error
	// Sandboxes lists the sandboxes holding network state (a netns, a cached ADD, an
	// IP), by ID, with their netns path or "".
	Sandboxes() (map[string]string, error)
}

// Defaults for Config.
const (
	DefaultNamespace   = "skiff"
	DefaultPauseImage  = "registry.k8s.io/pause:3.10"
	DefaultSnapshotter = "overlayfs"
	// DefaultStreamAddress keeps the streaming server on loopback: the kubelet (or
	// crictl) on the same host proxies exec/attach/port-forward to it.
	DefaultStreamAddress = "127.0.0.1:0"
)

// Config configures a Server.
type Config struct {
	// ContainerdAddress is the containerd socket to connect to (required).
	ContainerdAddress string
	// Namespace is the containerd namespace holding everything this server creates.
	Namespace string
	// RootDir holds persistent per-sandbox files (hosts, resolv.conf, hostname).
	RootDir string
	// StateDir holds runtime state: runc's root, IO FIFOs, sandbox shm mounts.
	StateDir string
	// RegistryConfigDir holds per-registry hosts.toml files (containerd's certs.d layout).
	// Empty means plain HTTPS to every registry.
	RegistryConfigDir string
	// Network wires pods to the network (required unless every pod uses host network;
	// a nil Network reports NetworkReady=false).
	Network Network
	// PauseImage is the name the project-built pause image is imported under.
	PauseImage string
	// AlwaysPause runs a pause container in every sandbox, as containerd's CRI does. By
	// default only sandboxes whose containers share one PID namespace get one (its init
	// process holds that namespace); the others keep their namespaces in bind mounts,
	// which saves a process per pod and the pause task's start, as CRI-O's
	// drop_infra_ctr does.
	AlwaysPause bool
	// Snapshotter unpacks images and prepares container root filesystems.
	Snapshotter string
	// CgroupParent is used for sandboxes whose config names no cgroup parent.
	// Empty means "/<Namespace>".
	CgroupParent string
	// StreamAddress is the host:port the exec/attach/port-forward streaming server
	// listens on; port 0 picks a free port. The URLs handed out by Exec, Attach and
	// PortForward point at it and carry a one-time token.
	StreamAddress string
}

func (c *Config) validate() error {
	var errs []error
	if c.ContainerdAddress == "" {
		errs = append(errs, errors.New("ContainerdAddress is required"))
	}
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if c.PauseImage == "" {
		c.PauseImage = DefaultPauseImage
	}
	if c.Snapshotter == "" {
		c.Snapshotter = DefaultSnapshotter
	}
	if c.CgroupParent == "" {
		c.CgroupParent = "/" + c.Namespace
	}
	if c.StreamAddress == "" {
		c.StreamAddress = DefaultStreamAddress
	}
	if _, _, err := net.SplitHostPort(c.StreamAddress); err != nil {
		errs = append(errs, fmt.Errorf("StreamAddress %q: %w", c.StreamAddress, err))
	}
	for name, dir := range map[string]string{"RootDir": c.RootDir, "StateDir": c.StateDir} {
		if dir == "" {
			errs = append(errs, fmt.Errorf("%s is required", name))
		} else if !filepath.IsAbs(dir) {
			errs = append(errs, fmt.Errorf("%s %q must be an absolute path", name, dir))
		}
	}
	if c.RegistryConfigDir != "" && !filepath.IsAbs(c.RegistryConfigDir) {
		errs = append(errs, fmt.Errorf("RegistryConfigDir %q must be an absolute path", c.RegistryConfigDir))
	}
	if c.CgroupParent != "" && !filepath.IsAbs(c.CgroupParent) {
		errs = append(errs, fmt.Errorf("CgroupParent %q must be an absolute cgroup path", c.CgroupParent))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid cri config: %w", err)
	}
	return nil
}
