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
