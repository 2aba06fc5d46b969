package agent

import (
	"context"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	internalapi "k8s.io/cri-api/pkg/apis"
	"k8s.io/klog/v2"
)

type probeKind int

const (
	probeLiveness probeKind = iota
	probeReadiness
	probeStartup
)

func (k probeKind) String() string {
	return [...]string{"Liveness", "Readiness", "Startup"}[k]
}

type probeKey struct {
	uid       types.UID
	container string
	kind      probeKind
}

// probeResult is the verdict on one container instance.
type probeResult struct {
	containerID string
	ok          bool
}

// prober runs the liveness, readiness and startup probes of running containers, one
// goroutine per probe (kubelet's prober manager). A changed verdict wakes the pod worker:
// readiness feeds status, liveness and startup failures restart the container.
type prober struct {
	runtime  internalapi.RuntimeService
	recorder record.EventRecorder
	onChange func(types.UID)

	mu sync.Mutex
	// ctx bounds every probe goroutine: the agent's, not a single sync's.
	ctx     context.Context
	workers map[probeKey]*probeWorker
	results map[probeKey]probeResult
}

func newProber(rt internalapi.RuntimeService, rec record.EventRecorder, onChange func(types.UID)) *prober {
	return &prober{runtime: rt, recorder: rec, onChange: onChange,
		workers: map[probeKey]*probeWorker{}, results: map[probeKey]probeResult{}}
}

// start sets the context probes run under; call it before any ensure.
func (p *prober) start(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ctx = ctx
}

// ensure starts the probes of a running container instance, replacing those of an
// earlier instance of the same container.
func (p *prober) ensure(pod *v1.Pod, c *v1.Container, containerID string, startedAt time.Time, podIP string) {
	for kind, spec := range map[probeKind]*v1.Probe{probeLiveness: c.LivenessProbe, probeReadiness: c.ReadinessProbe, probeStartup: c.StartupProbe} {
		if spec == nil {
			continue
		}
		key := probeKey{pod.UID, c.Name, kind}
		p.mu.Lock()
		w, ok := p.workers[key]
		if ok && w.containerID == containerID {
			p.mu.Unlock()
			continue
		}
		if ok {
			w.stop()
		}
		p.seedLocked(key, pod, containerID)
		if r := p.results[key]; kind == probeStartup && r.containerID == containerID && r.ok {
			p.mu.Unlock()
			continue // started before this agent did: startup probes do not run again
		}
		w = newProbeWorker(p, key, pod, c, spec, containerID, startedAt, podIP)
		p.workers[key] = w
		ctx := p.ctx
		p.mu.Unlock()
		go w.run(klog.NewContext(ctx, klog.FromContext(ctx).WithValues("pod", klog.KObj(pod), "probe", kind.String(), "container", c.Name)))
	}
}

// seedLocked carries the verdict an earlier agent reported over a restart of the agent.
// A fresh prober knows nothing, so without it the first status after a restart would
// mark every probed container unready (and not started) until its probe passes again,
// and endpoints would drop pods that never stopped serving. Only a container that still
// runs as the instance the pod's status names keeps its verdict, and only a positive
// one: a failed or unknown verdict is what a fresh prober assumes anyway.
func (p *prober) seedLocked(key probeKey, pod *v1.Pod, containerID string) {
	if r, ok := p.results[key]; ok && r.containerID == containerID {
		return
	}
	cs, found := reportedStatus(pod, key.container, containerID)
	if !found {
		return
	}
	switch {
	case key.kind == probeReadiness && cs.Ready,
		key.kind == probeStartup && cs.Started != nil && *cs.Started:
		p.results[key] = probeResult{containerID: containerID, ok: true}
	}
}

// reportedStatus finds the container's status in the pod, if it is about the instance
// containerID (status IDs carry the runtime's name: "containerd://<id>").
func reportedStatus(pod *v1.Pod, name, containerID string) (v1.ContainerStatus, bool) {
	for _, statuses := range [][]v1.ContainerStatus{pod.Status.ContainerStatuses, pod.Status.InitContainerStatuses} {
		for _, cs := range statuses {
			if cs.Name == name {
				_, id, ok := strings.Cut(cs.ContainerID, "://")
				return cs, ok && id == containerID
			}
		}
	}
	return v1.ContainerStatus{}, false
}

// result reports the verdict of a probe on a container instance, and whether the
// container has that probe at all.
func (p *prober) result(uid types.UID, name string, kind probeKind, containerID string) (ok, known bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, found := p.results[probeKey{uid, name, kind}]
	if !found || r.containerID != containerID {
		return false, false
	}
	return r.ok, true
}

func (p *prober) set(key probeKey, r probeResult) {
	p.mu.Lock()
	prev, had := p.results[key]
	p.results[key] = r
	p.mu.Unlock()
	if !had || prev != r {
		p.onChange(key.uid)
	}
}

// removePod stops every probe of a pod.
func (p *prober) removePod(uid types.UID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for key, w := range p.workers {
		if key.uid == uid {
			w.stop()
			delete(p.workers, key)
			delete(p.results, key)
		}
	}
}

// containerReady and containerStarted fold probe verdicts into container status.
// Without a probe a running container is started and ready; with one, it waits for the
// first success.
func (p *prober) containerStarted(pod *v1.Pod, c *v1.Container, id string) bool {
	if c.StartupProbe == nil {
		return true
	}
	ok, _ := p.result(pod.UID, c.Name, probeStartup, id)
	return ok
}

func (p *prober) containerReady(pod *v1.Pod, c *v1.Container, id string) bool {
	if !p.containerStarted(pod, c, id) {
		return false
	}
	if c.ReadinessProbe == nil {
		return true
	}
	ok, _ := p.result(pod.UID, c.Name, probeReadiness, id)
	return ok
}

// containerUnhealthy says why a running container must be restarted, if it must:
// its liveness probe failed, or its startup probe gave up.
func (p *prober) containerUnhealthy(pod *v1.Pod, c *v1.Container, id string) (string, bool) {
	if c.StartupProbe != nil {
		if ok, known := p.result(pod.UID, c.Name, probeStartup, id); known && !ok {
			return "Container " + c.Name + " failed startup probe, will be restarted", true
		}
	}
	if c.LivenessProbe != nil {
		if ok, known := p.result(pod.UID, c.Name, probeLiveness, id); known && !ok {
			return "Container " + c.Name + " failed liveness probe, will be restarted", true
		}
	}
	return "", false
}
