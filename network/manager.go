package network

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
)

// Manager runs CNI operations for pod sandboxes. It is safe for concurrent use.
type Manager struct {
	cfg      Config
	cni      *libcni.CNIConfig
	loopback *libcni.NetworkConfigList

	mu      sync.RWMutex
	podCIDR string                    // guarded by mu; the CIDR of the generated conflist
	netList *libcni.NetworkConfigList // guarded by mu; nil until a config is loaded
	// noPortsList is netList without portmap, for pods that map no host port: portmap
	// does nothing for them on ADD but still runs iptables on DEL. Guarded by mu.
	noPortsList *libcni.NetworkConfigList
	// otherPodCIDRs are the other nodes' pod CIDRs (from SyncRoutes), reached without NAT.
	// Guarded by mu.
	otherPodCIDRs []string
	source        string // guarded by mu; the file netList came from
}

// New validates cfg and returns a Manager. It touches nothing on the host: configs are
// loaded lazily by Ready, Attach and friends, and written by SetPodCIDR.
func New(cfg Config) (*Manager, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("invalid network config: %w", err)
	}
	lo, err := libcni.NetworkConfFromBytes([]byte(loopbackConf))
	if err != nil {
		return nil, fmt.Errorf("parse loopback config: %w", err)
	}
	return &Manager{
		cfg:      cfg,
		cni:      libcni.NewCNIConfigWithCacheDir(cfg.BinDirs, cfg.cacheDir(), nil),
		loopback: lo,
	}, nil
}

// SetPodCIDR (re)writes the generated conflist for cidr and loads it. When the user
// supplied a config in ConfDir, that config wins and SetPodCIDR only records the CIDR.
// Writing the same CIDR again is a no-op.
func (m *Manager) SetPodCIDR(cidr string) error {
	ipnet, err := parsePodCIDR(cidr)
	if err != nil {
		return err
	}
	cidr = ipnet.String()

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.podCIDR == cidr && m.netList != nil {
		return nil
	}
	m.podCIDR = cidr
	if user, err := findConfFile(m.cfg.ConfDir); err != nil {
		return err
	} else if user != "" {
		return m.loadLocked()
	}

	data, err := generateConflist(m.cfg, cidr)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(m.cfg.generatedConfFile(), data); err != nil {
		return err
	}
	return m.loadLocked()
}

// Ready returns nil once a network config is loaded, and says why not otherwise.
func (m *Manager) Ready() error {
	_, err := m.network()
	return err
}

// ConfigFile returns the path of the network config in use, or "" before one is loaded.
func (m *Manager) ConfigFile() string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.source
}

// network returns the loaded config list, loading it on first use: from ConfDir, else from a
// conflist generated earlier (e.g. before a restart), else from Config.PodCIDR.
func (m *Manager) network() (*libcni.NetworkConfigList, error) {
	m.mu.RLock()
	list := m.netList
	m.mu.RUnlock()
	if list != nil {
		return list, nil
	}
	if err := m.loadOrGenerate(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.netList, nil
}

func (m *Manager) loadOrGenerate() error {
	m.mu.Lock()
	if m.netList != nil {
		m.mu.Unlock()
		return nil
	}
	err := m.loadLocked()
	m.mu.Unlock()
	if err == nil || m.cfg.PodCIDR == "" {
		return err
	}
	return m.SetPodCIDR(m.cfg.PodCIDR)
}

// loadLocked loads the user's config if there is one, else the generated one. m.mu is held.
func (m *Manager) loadLocked() error {
	file, err := findConfFile(m.cfg.ConfDir)
	if err != nil {
		return err
	}
	if file == "" {
		file = m.cfg.generatedConfFile()
		if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
			return errors.New("network not ready: no CNI config in ConfDir and no pod CIDR set yet")
		}
	}
	list, err := loadConfFile(file)
	if err != nil {
		return err
	}
	// Find missing or too old plugins now, with a message naming them, rather than on the
	// first pod.
	ctx, cancel := context.WithTimeout(context.Background(), pluginCheckTimeout)
	defer cancel()
	if _, err := m.cni.ValidateNetworkList(ctx, list); err != nil {
		return fmt.Errorf("network not ready: CNI config %s with plugins in %v: %w", file, m.cfg.BinDirs, err)
	}
	if file == m.cfg.generatedConfFile() {
		if cidr := generatedMasqCIDR(list.Bytes); cidr != "" {
			if err := ensureMasquerade(ctx, list.Name, cidr, m.otherPodCIDRs); err != nil {
				return fmt.Errorf("network not ready: %w", err)
			}
		}
	}
	withoutPortmap, err := dropPlugins(list, "portmap")
	if err != nil {
		return err
	}
	m.netList, m.noPortsList, m.source = list, withoutPortmap, file
	return nil
}

// pluginCheckTimeout bounds the VERSION calls that validate a loaded config.
const pluginCheckTimeout = 10 * time.Second

// findConfFile returns the first CNI config file in dir in lexical order (the order kubelet
// and containerd use), or "" when dir is unset, missing or has none.
func findConfFile(dir string) (string, error) {
	if dir == "" {
		return "", nil
	}
	files, err := libcni.ConfFiles(dir, []string{".conflist", ".conf", ".json"})
	if err != nil {
		return "", fmt.Errorf("list CNI configs in %s: %w", dir, err)
	}
	if len(files) == 0 {
		return "", nil
	}
	return files[0], nil
}

// loadConfFile reads a .conflist as a list and a single-plugin .conf/.json as a list of one.
func loadConfFile(file string) (*libcni.NetworkConfigList, error) {
	if strings.HasSuffix(file, ".conflist") {
		list, err := libcni.NetworkConfFromFile(file)
		if err != nil {
			return nil, fmt.Errorf("load CNI config list %s: %w", file, err)
		}
		return list, nil
	}
	conf, err := libcni.ConfFromFile(file)
	if err != nil {
		return nil, fmt.Errorf("load CNI config %s: %w", file, err)
	}
	if conf.Network.Type == "" {
		return nil, fmt.Errorf("load CNI config %s: no plugin type", file)
	}
	list, err := libcni.ConfListFromConf(conf)
	if err != nil {
		return nil, fmt.Errorf("load CNI config %s: %w", file, err)
	}
	return list, nil
}

// writeFileAtomic replaces path with data so that a reader never sees half a file.
func writeFileAtomic(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// syncMasquerade rewrites the generated network's masquerade chain for the pod CIDRs of
// the other nodes; with a user-supplied network it does nothing.
func (m *Manager) syncMasquerade(ctx context.Context, podCIDRs []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.otherPodCIDRs = podCIDRs
	if m.netList == nil || m.source != m.cfg.generatedConfFile() {
		return nil // applied when the generated config loads
	}
	cidr := generatedMasqCIDR(m.netList.Bytes)
	if cidr == "" {
		return nil
	}
	return ensureMasquerade(ctx, m.netList.Name, cidr, podCIDRs)
}
