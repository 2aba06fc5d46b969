package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/klog/v2"
)

// Timings of the sync loop. The relist period is the PLEG's: how quickly a container exit
// reaches the pod worker.
const (
	relistPeriod         = time.Second
	housekeepingPeriod   = 2 * time.Second
	podResyncPeriod      = time.Minute
	containerBackoffBase = 10 * time.Second
	containerBackoffMax  = 5 * time.Minute
	imageBackoffBase     = 10 * time.Second
	imageBackoffMax      = 5 * time.Minute
	syncErrorRetry       = 10 * time.Second
)

// Agent is the node agent. Build it with New, run it with Run.
type Agent struct {
	cfg     Config
	machine machineInfo

	recorder    record.EventRecorder
	broadcaster record.EventBroadcaster

	// runtimeName prefixes container IDs in pod status ("<runtimeName>://<id>").
	// It is read from CRI Version before any pod worker starts.
	runtimeName string

	workers      *podWorkers
	statuses     *statusManager
	puller       *imagePuller
	crashBackoff *flowcontrol.Backoff
	pleg         *pleg
	source       *podSource
	prober       *prober
	reasons      *reasonCache
	admitter     *admitter
	vols         *podVolumes
	pressure     *pressureTracker
	metrics      *agentMetrics
	// cpuRates holds the CPU samples /stats/summary computes usageNanoCores from.
	cpuRates cpuRates
	// lastResync is when housekeeping last resynced every pod; only the sync loop uses it.
	lastResync time.Time

	// nodeMu guards the fields the node-status loop shares with tests and workers.
	nodeMu  sync.Mutex
	podCIDR string
	nodeUID types.UID
	// lastNodeReport is when node status was last written; only the node-status loop uses it.
	lastNodeReport time.Time
}

// New validates cfg and builds an Agent. Nothing is contacted until Run.
func New(cfg Config) (*Agent, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	machine, err := readMachineInfo()
	if err != nil {
		return nil, fmt.Errorf("read machine info: %w", err)
	}
	metrics := newAgentMetrics(&cfg) // wraps cfg.Runtime and cfg.Images to count their calls
	broadcaster := record.NewBroadcaster()
	a := &Agent{
		cfg:          cfg,
		metrics:      metrics,
		machine:      machine,
		broadcaster:  broadcaster,
		recorder:     broadcaster.NewRecorder(scheme.Scheme, v1.EventSource{Component: "kubelet", Host: cfg.NodeName}),
		crashBackoff: flowcontrol.NewBackOff(containerBackoffBase, containerBackoffMax),
		podCIDR:      cfg.PodCIDR,
		reasons:      newReasonCache(),
		admitter:     newAdmitter(),
		pressure:     newPressureTracker(cfg.Pressure.TransitionPeriod),
	}
	a.statuses = newStatusManager(cfg.Client)
	a.puller = newImagePuller(cfg.Images, a.recorder, flowcontrol.NewBackOff(imageBackoffBase, imageBackoffMax))
	a.puller.watch = newPullWatch(cfg.ImagePull, a.reportPullProgress)
	a.workers = newPodWorkers(metrics.instrumentSyncer(a))
	a.prober = newProber(cfg.Runtime, a.recorder, func(uid types.UID) { a.workers.kick(uid) })
	a.pleg = newPLEG(cfg.Runtime, cfg.NodeName, relistPeriod)
	a.pleg.metrics = metrics
	a.source = newPodSource(cfg.Client, cfg.NodeName)
	if a.vols, err = newPodVolumes(a.volumesConfig(), newVolumeSources(cfg.Client, func(uid types.UID) { a.workers.kick(uid) })); err != nil {
		return nil, err
	}
	return a, nil
}

// Run registers the node and serves its pods until ctx ends. It returns an error only when
// the agent cannot start (the runtime does not answer); later failures are retried.
func (a *Agent) Run(ctx context.Context) error {
	logger := klog.FromContext(ctx).WithValues("node", a.cfg.NodeName)
	ctx = klog.NewContext(ctx, logger)

	if err := a.initRuntime(ctx); err != nil {
		return err
	}
	kubeletListener, err := a.listenKubeletAPI()
	if err != nil {
		return err
	}
	if a.broadcaster != nil {
		a.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: a.cfg.EventClient.CoreV1().Events("")})
		defer a.broadcaster.Shutdown()
	}

	a.prober.start(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { a.runNodeStatus(ctx) })
	wg.Go(func() { a.runLease(ctx) })
	wg.Go(func() { a.source.run(ctx) })
	wg.Go(func() { a.pleg.run(ctx) })
	wg.Go(func() { a.runKubeletServer(ctx, kubeletListener) })
	wg.Go(func() { a.runVolumes(ctx) })
	wg.Go(func() { a.runContainerLogManager(ctx) })

	if !a.source.waitForSync(ctx) {
		return nil // ctx ended before the first list
	}
	logger.Info("Agent started", "runtime", a.runtimeName, "nodeIP", a.cfg.NodeIP)
	a.syncLoop(ctx)
	a.workers.wait()
	return nil
}

// initRuntime asks the runtime who it is, retrying until it answers, because the CRI server
// may come up after the agent.
func (a *Agent) initRuntime(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		v, err := a.cfg.Runtime.Version(ctx, "v1")
		if err != nil {
			logger.Info("Waiting for the container runtime", "err", err)
			return false, nil
		}
		a.runtimeName = v.RuntimeName
		a.machine.runtimeVersion = fmt.Sprintf("%s://%s", v.RuntimeName, v.RuntimeVersion)
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("container runtime did not answer Version: %w", err)
	}
	return nil
}

// syncLoop is the kubelet's main loop: it only hands work out. Pod updates from the apiserver
// and runtime changes from the PLEG wake pod workers; housekeeping finds pods that need a
// worker (orphans in the runtime, pods due for a periodic resync).
func (a *Agent) syncLoop(ctx context.Context) {
	housekeeping := time.NewTicker(housekeepingPeriod)
	defer housekeeping.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case u := <-a.source.updates:
			a.handlePodUpdate(ctx, u)
		case uid := <-a.pleg.events:
			a.handleRuntimeChange(ctx, uid)
		case <-housekeeping.C:
			a.housekeeping(ctx)
		}
	}
}
