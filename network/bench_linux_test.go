package network

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkAttachDetach measures one pod's network setup and teardown (netns, CNI ADD of
// loopback and the pod network, CNI DEL, netns removal) with the real plugins, and reports
// the ADD and DEL halves on their own: ADD is on RunPodSandbox's path, DEL on
// StopPodSandbox's.
func BenchmarkAttachDetach(b *testing.B) {
	for _, tc := range []struct {
		name  string
		ports []PortMapping
	}{
		{"noHostPort", nil},
		{"hostPort", []PortMapping{{HostPort: 21000, ContainerPort: 80}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			env := newTestEnv(b)
			ctx := context.Background()
			var attach, detach time.Duration
			for i := 0; b.Loop(); i++ {
				id := fmt.Sprintf("bench-%s-%d", env.suffix, i)
				netns, err := env.m.CreateNetns(id)
				if err != nil {
					b.Fatal(err)
				}
				pod := Pod{ID: id, Namespace: "default", Name: id, NetnsPath: netns, Ports: tc.ports}
				start := time.Now()
				if _, err := env.m.Attach(ctx, pod); err != nil {
					b.Fatal(err)
				}
				attach += time.Since(start)
				start = time.Now()
				if err := env.m.Detach(ctx, pod); err != nil {
					b.Fatal(err)
				}
				detach += time.Since(start)
				if err := env.m.RemoveNetns(netns); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(attach.Microseconds())/1000/float64(b.N), "attach-ms/op")
			b.ReportMetric(float64(detach.Microseconds())/1000/float64(b.N), "detach-ms/op")
		})
	}
}
