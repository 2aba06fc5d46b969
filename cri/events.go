package cri

import (
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// eventBacklog is how far a GetContainerEvents client may fall behind. Past it the
// client is cut off rather than silently missing events: the kubelet then relists.
const eventBacklog = 1024

// eventHub fans container lifecycle events out to GetContainerEvents clients.
type eventHub struct {
	mu   sync.Mutex
	subs map[chan *runtimeapi.ContainerEventResponse]struct{}
}

func newEventHub() *eventHub {
	return &eventHub{subs: map[chan *runtimeapi.ContainerEventResponse]struct{}{}}
}

// subscribe returns a channel of events, closed when the client falls too far behind
// or the server stops serving, and the function that unsubscribes.
func (h *eventHub) subscribe() (<-chan *runtimeapi.ContainerEventResponse, func()) {
	ch := make(chan *runtimeapi.ContainerEventResponse, eventBacklog)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[ch]; ok {
			delete(h.subs, ch)
			close(ch)
		}
	}
}

// active tells whether anyone listens, so that idle servers don't build statuses.
func (h *eventHub) active() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs) > 0
}

func (h *eventHub) publish(logger klog.Logger, ev *runtimeapi.ContainerEventResponse) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- ev:
		default:
			logger.Info("Container event client fell behind; disconnecting it", "backlog", eventBacklog)
			delete(h.subs, ch)
			close(ch)
		}
	}
}

// closeAll ends every subscription (the gRPC server is stopping).
func (h *eventHub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		delete(h.subs, ch)
		close(ch)
	}
}

// GetContainerEvents streams container and sandbox lifecycle events, each with the
// pod's sandbox status and the statuses of its containers at the time.
func (s *service) GetContainerEvents(_ *runtimeapi.GetEventsRequest, stream runtimeapi.RuntimeService_GetContainerEventsServer) error {
	events, unsubscribe := s.events.subscribe()
	defer unsubscribe()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return status.Error(codes.Unavailable, "container event stream ended (client too slow, or server stopping); relist and subscribe again")
			}
			if err := stream.Send(ev); err != nil {
				return err
			}
		case <-stream.Context().Done():
			return nil
		case <-s.lifetime.Done():
			return status.Error(codes.Unavailable, "CRI server is shutting down")
		}
	}
}

// containerEvent publishes an event about container c (which may already be gone
// from the store, for a DELETED event).
func (s *service) containerEvent(c *container, typ runtimeapi.ContainerEventType) {
	if !s.events.active() {
		return
	}
	sb, err := s.store.sandbox(c.meta.SandboxID)
	if err != nil {
		return // the sandbox went first; nobody can place the event
	}
	s.publishEvent(c.meta.ID, sb, typ)
}

// sandboxEvent publishes an event about a sandbox itself, as containerd's CRI does:
// the sandbox ID in place of a container ID.
func (s *service) sandboxEvent(sb *sandbox, typ runtimeapi.ContainerEventType) {
	if !s.events.active() {
		return
	}
	s.publishEvent(sb.meta.ID, sb, typ)
}

func (s *service) publishEvent(id string, sb *sandbox, typ runtimeapi.ContainerEventType) {
	ctx := s.ns(s.lifetime)
	ev := &runtimeapi.ContainerEventResponse{
		ContainerId:        id,
		ContainerEventType: typ,
		CreatedAt:          time.Now().UnixNano(),
		PodSandboxStatus:   sandboxStatus(sb),
	}
	for _, c := range s.store.containersOf(sb.meta.ID) {
		ev.ContainersStatuses = append(ev.ContainersStatuses, s.containerStatus(ctx, c))
	}
	s.events.publish(klog.FromContext(ctx), ev)
}
