package cri

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

func TestEventHub(t *testing.T) {
	h := newEventHub()
	logger := klog.Background()
	if h.active() {
		t.Error("a new hub is active")
	}
	h.publish(logger, &runtimeapi.ContainerEventResponse{ContainerId: "unheard"})
	fast, unsubscribe := h.subscribe()
	slow, _ := h.subscribe()
	for i := range eventBacklog {
		h.publish(logger, &runtimeapi.ContainerEventResponse{ContainerId: fmt.Sprint(i)})
		if ev := <-fast; ev.ContainerId != fmt.Sprint(i) {
			t.Fatalf("fast client got %q, want %d", ev.ContainerId, i)
		}
	}
	// One more than the slow client's backlog cuts it off; the fast one goes on.
	h.publish(logger, &runtimeapi.ContainerEventResponse{ContainerId: "overflow"})
	n := 0
	for range slow {
		n++
	}
	if n != eventBacklog {
		t.Errorf("slow client got %d events before its channel closed, want %d", n, eventBacklog)
	}
	if ev := <-fast; ev.ContainerId != "overflow" {
		t.Errorf("fast client got %q", ev.ContainerId)
	}
	unsubscribe()
	unsubscribe() // idempotent
	if h.active() {
		t.Error("hub active after every client left")
	}
	other, _ := h.subscribe()
	h.closeAll()
	if _, ok := <-other; ok {
		t.Error("closeAll left a subscription open")
	}
}

// TestIntegrationContainerEvents follows a pod's whole life on the event stream:
// the sandbox and a container created, started, stopped and deleted, each event
// carrying the pod's status at that moment.
func TestIntegrationContainerEvents(t *testing.T) {
	requireIntegration(t)
	e := newTestEnv(t)
	e.startRegistry()
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	stream, err := e.rt.GetContainerEvents(ctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		t.Fatalf("GetContainerEvents: %v", err)
	}
	events := make(chan *runtimeapi.ContainerEventResponse, 100)
	go func() {
		defer close(events)
		for {
			ev, err := stream.Recv()
			if err != nil {
				return
			}
			events <- ev
		}
	}()
	// The server subscribes when the stream's handler runs, after the client returns.
	deadline := time.Now().Add(10 * time.Second)
	for !e.srv.svc.events.active() {
		if time.Now().After(deadline) {
			t.Fatal("event stream never subscribed")
		}
		time.Sleep(10 * time.Millisecond)
	}

	pod, ctr := e.runBusyboxPod("events", &runtimeapi.ContainerConfig{Command: []string{"sh", "-c", `trap "exit 2" TERM; while true; do sleep 0.1; done`}})
	if _, err := e.rt.StopContainer(e.ctx, &runtimeapi.StopContainerRequest{ContainerId: ctr, Timeout: 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.RemoveContainer(e.ctx, &runtimeapi.RemoveContainerRequest{ContainerId: ctr}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.StopPodSandbox(e.ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.RemovePodSandbox(e.ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}

	type step struct {
		id    string
		typ   runtimeapi.ContainerEventType
		check func(*runtimeapi.ContainerEventResponse) error
	}
	podState := func(want runtimeapi.PodSandboxState) func(*runtimeapi.ContainerEventResponse) error {
		return func(ev *runtimeapi.ContainerEventResponse) error {
			if got := ev.GetPodSandboxStatus().GetState(); got != want || ev.GetPodSandboxStatus().GetId() != pod {
				return fmt.Errorf("pod %s state %v, want %s %v", ev.GetPodSandboxStatus().GetId(), got, pod, want)
			}
			return nil
		}
	}
	ctrState := func(want runtimeapi.ContainerState, exitCode int32) func(*runtimeapi.ContainerEventResponse) error {
		return func(ev *runtimeapi.ContainerEventResponse) error {
			if len(ev.ContainersStatuses) != 1 || ev.ContainersStatuses[0].Id != ctr ||
				ev.ContainersStatuses[0].State != want || ev.ContainersStatuses[0].ExitCode != exitCode {
				return fmt.Errorf("container statuses %v, want %s %v exit %d", ev.ContainersStatuses, ctr, want, exitCode)
			}
			return podState(runtimeapi.PodSandboxState_SANDBOX_READY)(ev)
		}
	}
	noContainers := func(state runtimeapi.PodSandboxState) func(*runtimeapi.ContainerEventResponse) error {
		return func(ev *runtimeapi.ContainerEventResponse) error {
			if len(ev.ContainersStatuses) != 0 {
				return fmt.Errorf("container statuses %v, want none", ev.ContainersStatuses)
			}
			return podState(state)(ev)
		}
	}
	want := []step{
		{pod, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT, noContainers(runtimeapi.PodSandboxState_SANDBOX_READY)},
		{pod, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT, noContainers(runtimeapi.PodSandboxState_SANDBOX_READY)},
		{ctr, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT, ctrState(runtimeapi.ContainerState_CONTAINER_CREATED, 0)},
		{ctr, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT, ctrState(runtimeapi.ContainerState_CONTAINER_RUNNING, 0)},
		{ctr, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, ctrState(runtimeapi.ContainerState_CONTAINER_EXITED, 2)},
		{ctr, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT, noContainers(runtimeapi.PodSandboxState_SANDBOX_READY)},
		{pod, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, noContainers(runtimeapi.PodSandboxState_SANDBOX_NOTREADY)},
		{pod, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT, noContainers(runtimeapi.PodSandboxState_SANDBOX_NOTREADY)},
	}
	var got []string
	for i, w := range want {
		var ev *runtimeapi.ContainerEventResponse
		select {
		case ev = <-events:
		case <-time.After(10 * time.Second):
			t.Fatalf("event %d never came; got so far:\n%s", i, strings.Join(got, "\n"))
		}
		if ev == nil {
			t.Fatalf("event stream ended before event %d; got so far:\n%s", i, strings.Join(got, "\n"))
		}
		got = append(got, fmt.Sprintf("%s %v", ev.ContainerId[:12], ev.ContainerEventType))
		if ev.ContainerId != w.id || ev.ContainerEventType != w.typ {
			t.Fatalf("event %d = %s %v, want %s %v; got so far:\n%s", i, ev.ContainerId, ev.ContainerEventType, w.id, w.typ, strings.Join(got, "\n"))
		}
		if err := w.check(ev); err != nil {
			t.Errorf("event %d (%v): %v", i, w.typ, err)
		}
	}
}
