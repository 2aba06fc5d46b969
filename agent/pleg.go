package agent

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// pleg is the pod lifecycle event generator: it wakes pods on the runtime's stop events
// (pleg_events.go), and it relists this agent's sandboxes and containers every period,
// compares the snapshot with the previous one, and reports the UID of every pod whose
// runtime state changed (a container started, exited or vanished).
// The first relist reports every pod the runtime holds, which is how pods that survived an
// agent restart are adopted.
type pleg struct {
	runtime  internalapi.RuntimeService
	selector map[string]string
	period   time.Duration
	events   chan types.UID

	// last maps a pod UID to a fingerprint of its runtime state.
	last map[types.UID]string
	// metrics times relists (kubelet_pleg_relist_duration_seconds); nil-safe.
	metrics *agentMetrics
}

func newPLEG(rt internalapi.RuntimeService, nodeName string, period time.Duration) *pleg {
	return &pleg{
		runtime:  rt,
		selector: map[string]string{labelNode: nodeName},
		period:   period,
		events:   make(chan types.UID, 128),
	}
}

func (p *pleg) run(ctx context.Context) {
	logger := klog.FromContext(ctx).WithName("pleg")
	var events sync.WaitGroup
	defer events.Wait()
	events.Go(func() { p.watchEvents(ctx) })
	t := time.NewTicker(p.period)
	defer t.Stop()
	for {
		if err := p.relist(ctx); err != nil && ctx.Err() == nil {
			logger.Error(err, "Relisting the runtime")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *pleg) relist(ctx context.Context) error {
	defer p.metrics.observeRelist(time.Now())
	snap, err := p.snapshot(ctx)
	if err != nil {
		return err
	}
	changed := diffSnapshots(p.last, snap, p.last == nil)
	p.last = snap
	for _, uid := range changed {
		select {
		case p.events <- uid:
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}

// snapshot fingerprints each pod's sandboxes and containers by ID and state.
func (p *pleg) snapshot(ctx context.Context) (map[types.UID]string, error) {
	sandboxes, err := p.runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: p.selector})
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	containers, err := p.runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: p.selector})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	parts := map[types.UID][]string{}
	for _, s := range sandboxes {
		uid := types.UID(s.Labels[labelPodUID])
		parts[uid] = append(parts[uid], "s/"+s.Id+"/"+s.State.String())
	}
	for _, c := range containers {
		uid := types.UID(c.Labels[labelPodUID])
		parts[uid] = append(parts[uid], "c/"+c.Id+"/"+c.State.String())
	}
	snap := make(map[types.UID]string, len(parts))
	for uid, ps := range parts {
		if uid == "" {
			continue
		}
		sort.Strings(ps)
		snap[uid] = strings.Join(ps, ",")
	}
	return snap, nil
}

// diffSnapshots returns the UIDs whose fingerprint differs, including pods that appeared or
// disappeared. With all set, every pod in next is reported.
func diffSnapshots(prev, next map[types.UID]string, all bool) []types.UID {
	var out []types.UID
	for uid, fp := range next {
		if all || prev[uid] != fp {
			out = append(out, uid)
		}
	}
	for uid := range prev {
		if _, ok := next[uid]; !ok {
			out = append(out, uid)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
