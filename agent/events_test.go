package agent

import (
	"context"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
)

// TestRepeatedEventsAggregate checks that the agent's recorder correlates events as
// kubelet's does: the same BackOff event again bumps count on one Event object.
func TestRepeatedEventsAggregate(t *testing.T) {
	env := newTestEnv(t, nil)
	a, err := New(env.agent.cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: env.client.CoreV1().Events("")})
	defer a.broadcaster.Shutdown()
	pod := testPod("web", "uid-1")
	for range 3 {
		a.recorder.Eventf(containerRef(pod, "nginx"), v1.EventTypeWarning, eventBackOff,
			"Back-off restarting failed container %s in pod %s", "nginx", podDesc(pod))
	}
	err = wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		evs, err := env.client.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		return len(evs.Items) == 1 && evs.Items[0].Count == 3, nil
	})
	if err != nil {
		evs, _ := env.client.CoreV1().Events("default").List(t.Context(), metav1.ListOptions{})
		t.Fatalf("want one BackOff event with count 3, got %+v", evs.Items)
	}
}
