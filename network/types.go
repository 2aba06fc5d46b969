package network

import "net"

// PortMapping is a hostPort mapping handed to the portmap plugin.
type PortMapping struct {
	HostPort      int32
	ContainerPort int32
	Protocol      string // "tcp", "udp" or "sctp"
	HostIP        string
}

// Pod names the sandbox a CNI operation is for.
type Pod struct {
	ID        string // sandbox ID: the CNI container ID
	Namespace string
	Name      string
	UID       string
	NetnsPath string
	Ports     []PortMapping
}

// Result is what a successful CNI ADD gave the pod.
type Result struct {
	IPs       []net.IP // first IPv4 first
	Interface string   // e.g. "eth0"
}

// Route sends traffic for another node's pod CIDR to that node (multi-node clusters without
// an overlay: every node routes the others' pod CIDRs via their node addresses).
type Route struct {
	Dst string // the other node's pod CIDR, e.g. "10.244.2.0/24"
	Via net.IP // the other node's address, on a network this node is attached to
}
