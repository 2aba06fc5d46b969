package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
)

// defaultWorkers matches kube-controller-manager's --concurrent-replicaset-syncs and
// --concurrent-gc-syncs defaults (5 and 20; one number is enough here).
const defaultWorkers = 5

// Config configures a Manager.
type Config struct {
	// Client talks to the apiserver. Required.
	Client kubernetes.Interface
	// Metadata reads, patches and deletes objects of any served kind as metadata only:
	// the garbage collector and the namespace cleaner work on every kind discovery
	// (Client.Discovery()) reports. Required.
	Metadata metadata.Interface
	// Workers is the number of goroutines per queue-driven controller; 0 means 5.
	Workers int
}

// Manager runs the ReplicaSet controller, the garbage collector, the pod garbage
// collector, the namespace cleaner and the node lifecycle controller over one shared
// informer factory.
type Manager struct {
	client      kubernetes.Interface
	workers     int
	factory     informers.SharedInformerFactory
	broadcaster record.EventBroadcaster
	rs          *replicaSetController
	gc          *garbageCollector
	podGC       *podGC
	namespaces  *namespaceCleaner
	nodes       *nodeLifecycle

	mu      sync.Mutex
	started bool
}

// New validates cfg and wires the controllers; nothing talks to the apiserver until Run.
func New(cfg Config) (*Manager, error) {
	if cfg.Client == nil {
		return nil, errors.New("controller: Config.Client is required")
	}
	if cfg.Metadata == nil {
		return nil, errors.New("controller: Config.Metadata is required")
	}
	if cfg.Workers < 0 {
		return nil, fmt.Errorf("controller: Config.Workers must not be negative, got %d", cfg.Workers)
	}
	if cfg.Workers == 0 {
		cfg.Workers = defaultWorkers
	}
	factory := informers.NewSharedInformerFactory(cfg.Client, 0)
	broadcaster := record.NewBroadcaster()
	recorder := func(component string) record.EventRecorder {
		return broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: component})
	}

	rs, err := newReplicaSetController(cfg.Client, factory.Apps().V1().ReplicaSets(), factory.Core().V1().Pods(),
		recorder("replicaset-controller"))
	if err != nil {
		return nil, fmt.Errorf("controller: replicaset controller: %w", err)
	}
	gc := newGarbageCollector(cfg.Metadata, cfg.Client.Discovery())
	namespaces, err := newNamespaceCleaner(cfg.Client, cfg.Metadata, factory)
	if err != nil {
		return nil, fmt.Errorf("controller: namespace cleaner: %w", err)
	}
	return &Manager{
		client:      cfg.Client,
		workers:     cfg.Workers,
		factory:     factory,
		broadcaster: broadcaster,
		rs:          rs,
		gc:          gc,
		podGC:       newPodGC(cfg.Client, factory.Core().V1().Pods(), factory.Core().V1().Nodes()),
		namespaces:  namespaces,
		nodes:       newNodeLifecycle(cfg.Client, factory, recorder("node-controller")),
	}, nil
}

// Run starts the informers and controllers and blocks until ctx is done. It may be called
// once.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.started {
		m.mu.Unlock()
		return errors.New("controller: Manager.Run called twice")
	}
	m.started = true
	m.mu.Unlock()

	logger := klog.FromContext(ctx)
	logger.Info("Starting controllers", "workers", m.workers)
	m.broadcaster.StartStructuredLogging(3)
	m.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: m.client.CoreV1().Events("")})
	defer m.broadcaster.Shutdown()

	m.factory.Start(ctx.Done())
	defer m.factory.Shutdown()

	var wg sync.WaitGroup
	wg.Go(func() { m.rs.run(ctx, m.workers) })
	wg.Go(func() { m.gc.run(ctx, m.workers) })
	wg.Go(func() { m.podGC.run(ctx) })
	wg.Go(func() { m.namespaces.run(ctx, 1) })
	wg.Go(func() { m.nodes.run(ctx) })
	wg.Wait()
	return nil
}
