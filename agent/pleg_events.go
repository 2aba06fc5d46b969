package agent

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// eventsRetry is how long the PLEG waits before it asks the runtime for container events
// again after the stream ended.
const eventsRetry = 5 * time.Second

// watchEvents wakes the worker of a pod as soon as the runtime reports that one of its
// containers or its sandbox stopped (CRI GetContainerEvents), instead of at the next
// relist. The relist stays the source of truth, and the only source with a runtime that
// does not stream events. Created and started events are left out: they follow the
// agent's own actions, after which the worker already reads the runtime again.
func (p *pleg) watchEvents(ctx context.Context) {
	logger := klog.FromContext(ctx).WithName("pleg")
	for {
		ch := make(chan *runtimeapi.ContainerEventResponse, 128)
		errc := make(chan error, 1)
		streamCtx, cancel := context.WithCancel(ctx)
		go func() { errc <- p.runtime.GetContainerEvents(streamCtx, ch, nil) }()
		err := p.forwardEvents(ctx, ch, errc)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if s, ok := status.FromError(err); ok && s.Code() == codes.Unimplemented {
			logger.Info("The runtime does not stream container events; relisting only")
			return
		}
		logger.V(2).Info("Container event stream ended; retrying", "err", err, "in", eventsRetry)
		select {
		case <-ctx.Done():
			return
		case <-time.After(eventsRetry):
		}
	}
}

// forwardEvents passes the pod UIDs of this node's stop events on until the stream ends.
func (p *pleg) forwardEvents(ctx context.Context, ch <-chan *runtimeapi.ContainerEventResponse, errc <-chan error) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errc:
			return err
		case ev := <-ch:
			uid, ok := p.stoppedPod(ev)
			if !ok {
				continue
			}
			select {
			case p.events <- uid:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// stoppedPod is the UID of the pod a stop event is about, when the pod is this agent's.
func (p *pleg) stoppedPod(ev *runtimeapi.ContainerEventResponse) (types.UID, bool) {
	if ev.GetContainerEventType() != runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT {
		return "", false
	}
	labels := ev.GetPodSandboxStatus().GetLabels()
	for k, v := range p.selector {
		if labels[k] != v {
			return "", false
		}
	}
	uid := types.UID(labels[labelPodUID])
	return uid, uid != ""
}
