package network

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/containernetworking/cni/libcni"
)

// cniVersion is the spec version of generated configs: the newest that Debian's plugins
// (containernetworking-plugins 1.1.1) understand.
const cniVersion = "1.0.0"

// loopbackConf brings lo up inside the pod netns. It is a network of its own, not a plugin
// of the pod network, so that its result never shadows the pod IP in a chained prevResult.
const loopbackConf = `{"cniVersion": "` + cniVersion + `", "name": "skiff-loopback", "plugins": [{"type": "loopback"}]}`

// generateConflist renders the pod network: a bridge acting as the pods' gateway,
// host-local IPAM over the pod CIDR, and portmap for hostPorts. Traffic leaving the pod CIDR
// is masqueraded by one chain for the whole CIDR (masquerade.go), not by the bridge.
func generateConflist(cfg Config, podCIDR string) ([]byte, error) {
	type obj = map[string]any
	list := obj{
		"cniVersion": cniVersion,
		"name":       cfg.NetworkName,
		"plugins": []obj{
			{
				"type":        "bridge",
				"bridge":      cfg.BridgeName,
				"isGateway":   true,
				"ipMasq":      false,
				"hairpinMode": true,
				"ipam": obj{
					"type":    "host-local",
					"dataDir": cfg.ipamDataDir(),
					"ranges":  [][]obj{{{"subnet": podCIDR}}},
					"routes":  []obj{{"dst": "0.0.0.0/0"}},
				},
			},
			{
				"type":         "portmap",
				"capabilities": obj{"portMappings": true},
				"snat":         true,
			},
		},
	}
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("render conflist: %w", err)
	}
	return append(b, '\n'), nil
}

// dropPlugins returns list without the plugins of the given type, with its Bytes rewritten
// to match: libcni caches Bytes at ADD as the config DEL must use.
func dropPlugins(list *libcni.NetworkConfigList, pluginType string) (*libcni.NetworkConfigList, error) {
	if !slices.ContainsFunc(list.Plugins, func(p *libcni.PluginConfig) bool { return p.Network.Type == pluginType }) {
		return list, nil
	}
	var raw map[string]any
	if err := json.Unmarshal(list.Bytes, &raw); err != nil {
		return nil, fmt.Errorf("CNI config list %q: %w", list.Name, err)
	}
	plugins, _ := raw["plugins"].([]any)
	raw["plugins"] = slices.DeleteFunc(slices.Clone(plugins), func(p any) bool {
		conf, _ := p.(map[string]any)
		return conf["type"] == pluginType
	})
	data, err := json.Marshal(raw)
	if err != nil {
		return nil, fmt.Errorf("CNI config list %q: %w", list.Name, err)
	}
	out, err := libcni.NetworkConfFromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("CNI config list %q without %s: %w", list.Name, pluginType, err)
	}
	return out, nil
}
