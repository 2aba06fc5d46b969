package network

import (
	"encoding/json"
	"fmt"
)

// cniVersion is the spec version of generated configs: the newest that Debian's plugins
// (containernetworking-plugins 1.1.1) understand.
const cniVersion = "1.0.0"

// loopbackConf brings lo up inside the pod netns. It is a network of its own, not a plugin
// of the pod network, so that its result never shadows the pod IP in a chained prevResult.
const loopbackConf = `{"cniVersion": "` + cniVersion + `", "name": "skiff-loopback", "plugins": [{"type": "loopback"}]}`

// generateConflist renders the pod network: a bridge acting as the pods' gateway with
// masquerading for traffic leaving the pod CIDR, host-local IPAM over the pod CIDR, and
// portmap for hostPorts.
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
				"ipMasq":      true,
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
