package cri

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"sync"

	"github.com/skiff-sh/skiff/network"
)

// fakeNetwork stands in for package network: it creates real named network
// namespaces with `ip netns` (so runc can join them) but hands out IPs itself
// instead of running CNI plugins.
type fakeNetwork struct {
	prefix string

	mu        sync.Mutex
	readyErr  error
	attachErr error // returned by Attach after it recorded the pod, as a half-done ADD
	cidr      string
	nextIP    byte
	attached  map[string]network.Pod // by sandbox ID
	netns     map[string]bool        // live netns paths
	netnsOf   map[string]string      // sandbox ID -> the netns path made for it
	detaches  int
}

func newFakeNetwork(prefix string) *fakeNetwork {
	return &fakeNetwork{prefix: prefix, nextIP: 2, attached: map[string]network.Pod{}, netns: map[string]bool{}, netnsOf: map[string]string{}}
}

func (f *fakeNetwork) SetPodCIDR(cidr string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cidr = cidr
	return nil
}

func (f *fakeNetwork) Ready() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.readyErr
}

func (f *fakeNetwork) CreateNetns(id string) (string, error) {
	name := f.prefix + id[:12]
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return "", fmt.Errorf("ip netns add %s: %v: %s", name, err, out)
	}
	// CNI's loopback plugin would bring lo up; port forwarding dials 127.0.0.1 in the pod.
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		_ = exec.Command("ip", "netns", "delete", name).Run()
		return "", fmt.Errorf("ip -n %s link set lo up: %v: %s", name, err, out)
	}
	path := "/var/run/netns/" + name
	f.mu.Lock()
	f.netns[path] = true
	f.netnsOf[id] = path
	f.mu.Unlock()
	return path, nil
}

func (f *fakeNetwork) Sandboxes() (map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	held := map[string]string{}
	for id := range f.attached {
		held[id] = ""
	}
	for id, path := range f.netnsOf {
		if f.netns[path] {
			held[id] = path
		}
	}
	return held, nil
}

func (f *fakeNetwork) Attach(_ context.Context, pod network.Pod) (*network.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.netns[pod.NetnsPath] {
		return nil, fmt.Errorf("attach %s: netns %s does not exist", pod.ID, pod.NetnsPath)
	}
	f.attached[pod.ID] = pod
	if f.attachErr != nil {
		return nil, f.attachErr
	}
	ip := net.IPv4(10, 99, 0, f.nextIP)
	f.nextIP++
	return &network.Result{IPs: []net.IP{ip}, Interface: "eth0"}, nil
}

func (f *fakeNetwork) Detach(_ context.Context, pod network.Pod) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.attached, pod.ID)
	f.detaches++
	return nil
}

func (f *fakeNetwork) RemoveNetns(path string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.netns[path] {
		return nil
	}
	name := path[len("/var/run/netns/"):]
	if out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns delete %s: %v: %s", name, err, out)
	}
	delete(f.netns, path)
	return nil
}

// cleanup removes every namespace still present (test failure paths).
func (f *fakeNetwork) cleanup() {
	f.mu.Lock()
	paths := make([]string, 0, len(f.netns))
	for p := range f.netns {
		paths = append(paths, p)
	}
	f.mu.Unlock()
	for _, p := range paths {
		_ = f.RemoveNetns(p)
	}
}

var _ Network = (*fakeNetwork)(nil)
