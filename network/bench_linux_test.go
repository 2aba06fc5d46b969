package network

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkAttachDetach measures one pod's network setup and teardown (netns, CNI ADD of
// loopback and the pod network, CNI DEL, netns removal) with the real plugins.
func BenchmarkAttachDetach(b *testing.B) {
	env := newTestEnv(b)
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		id := fmt.Sprintf("bench-%s-%d", env.suffix, i)
		netns, err := env.m.CreateNetns(id)
		if err != nil {
			b.Fatal(err)
		}
		pod := Pod{ID: id, Namespace: "default", Name: id, NetnsPath: netns,
			Ports: []PortMapping{{HostPort: 21000, ContainerPort: 80}}}
		if _, err := env.m.Attach(ctx, pod); err != nil {
			b.Fatal(err)
		}
		if err := env.m.Detach(ctx, pod); err != nil {
			b.Fatal(err)
		}
		if err := env.m.RemoveNetns(netns); err != nil {
			b.Fatal(err)
		}
	}
}
