package agent

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"
)

// eventingRuntime streams the given events, then holds the stream open until ctx ends.
type eventingRuntime struct {
	*critest.FakeRuntimeService
	events []*runtimeapi.ContainerEventResponse
}

func (e *eventingRuntime) GetContainerEvents(ctx context.Context, ch chan *runtimeapi.ContainerEventResponse, _ func(runtimeapi.RuntimeService_GetContainerEventsClient)) error {
	for _, ev := range e.events {
		ch <- ev
	}
	<-ctx.Done()
	return ctx.Err()
}

func stopEvent(typ runtimeapi.ContainerEventType, node, uid string) *runtimeapi.ContainerEventResponse {
	return &runtimeapi.ContainerEventResponse{
		ContainerId: "c-" + uid, ContainerEventType: typ,
		PodSandboxStatus: &runtimeapi.PodSandboxStatus{Labels: map[string]string{labelNode: node, labelPodUID: uid}},
	}
}

func TestPLEGWakesOnStopEvents(t *testing.T) {
	rt := &eventingRuntime{FakeRuntimeService: critest.NewFakeRuntimeService(), events: []*runtimeapi.ContainerEventResponse{
		stopEvent(runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT, testNode, "started"),
		stopEvent(runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, "other-node", "foreign"),
		stopEvent(runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, testNode, "mine"),
	}}
	p := newPLEG(rt, testNode, time.Hour) // no relist would come in time
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); p.watchEvents(ctx) }()
	defer func() { cancel(); <-done }()
	select {
	case uid := <-p.events:
		if uid != types.UID("mine") {
			t.Errorf("woke pod %q, want only this node's stopped pod", uid)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no wake-up from the stop event")
	}
	select {
	case uid := <-p.events:
		t.Errorf("unexpected wake-up for %q", uid)
	case <-time.After(100 * time.Millisecond):
	}
}
