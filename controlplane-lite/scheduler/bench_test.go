package scheduler

import (
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
)

// BenchmarkSchedule measures pods/s through the whole scheduler (informers, queue, filters,
// score, assume, binding) against a fake apiserver over many nodes. The fake's costs are
// included, so compare runs of this benchmark with each other, not with a real cluster.
func BenchmarkSchedule(b *testing.B) {
	const inFlight = 30
	for _, nodes := range []int{100, 1000} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			objs := make([]runtime.Object, 0, nodes)
			for i := range nodes {
				objs = append(objs, newNode(fmt.Sprintf("node-%d", i), "32", "128Gi"))
			}
			// NewClientset's field-managed tracker spends more time per binding than the
			// scheduler does; the plain tracker keeps the measurement about the scheduler.
			client := wrapFake(fake.NewSimpleClientset(objs...)) //nolint:staticcheck // see above
			s := runScheduler(b, b.Context(), client)
			for !s.synced[0]() || !s.synced[1]() {
				time.Sleep(time.Millisecond)
			}
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				// The fake's watch channel holds 100 events and panics when full: keep few
				// pods (an add and a bind event each) in flight.
				for i-client.numBindings() >= inFlight {
					time.Sleep(50 * time.Microsecond)
				}
				pod := newPod(fmt.Sprintf("pod-%d", i), requesting("100m", "128Mi"))
				if err := client.Tracker().Add(pod); err != nil {
					b.Fatal(err)
				}
			}
			for client.numBindings() < b.N {
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "pods/s")
		})
	}
}
