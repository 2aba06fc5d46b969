package app

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"github.com/skiff-sh/skiff/network"
)

// routeSyncer is the part of network.Manager the node-routes controller drives.
type routeSyncer interface {
	SyncRoutes(ctx context.Context, routes []network.Route) error
}

const (
	// routesKey is the only item of the queue: every Node change leads to one full sync,
	// because SyncRoutes takes the whole set of routes at once.
	routesKey = "routes"
	// routesResync re-applies the routes now and then, repairing any deleted by hand.
	routesResync = 5 * time.Minute
)

// nodeRoutes routes the pod CIDRs of every other node via that node's InternalIP, so that
// pods reach each other across nodes on one L2 network without an overlay.
type nodeRoutes struct {
	self   string
	lister corelisters.NodeLister
	synced cache.InformerSynced
	syncer routeSyncer
	queue  workqueue.TypedRateLimitingInterface[string]
}

// startNodeRoutes runs the node-routes controller of node o.NodeName in g with its own
// client from kubeconfig. netManager is the in-process CRI server's pod network; nil (the
// agent drives another runtime) gets a manager of its own, since routes concern the node,
// not the runtime.
func startNodeRoutes(ctx context.Context, g *errgroup.Group, o *Options, kubeconfig string, netManager *network.Manager) error {
	if netManager == nil {
		var err error
		if netManager, err = network.New(o.networkConfig()); err != nil {
			return fmt.Errorf("node routes: %w", err)
		}
	}
	restConfig, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	restConfig.UserAgent = "skiff-routes/" + o.NodeName
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return fmt.Errorf("apiserver client for node routes: %w", err)
	}
	g.Go(func() error { return runNodeRoutes(ctx, client, o.NodeName, netManager) })
	return nil
}

// runNodeRoutes keeps the routes in step with the Node objects until ctx ends.
func runNodeRoutes(ctx context.Context, client kubernetes.Interface, self string, syncer routeSyncer) error {
	logger := klog.FromContext(ctx).WithName("node-routes")
	ctx = klog.NewContext(ctx, logger)
	factory := informers.NewSharedInformerFactory(client, routesResync)
	informer := factory.Core().V1().Nodes()
	c := &nodeRoutes{
		self:   self,
		lister: informer.Lister(),
		synced: informer.Informer().HasSynced,
		syncer: syncer,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](200*time.Millisecond, 30*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "node-routes"}),
	}
	enqueue := func(any) { c.queue.Add(routesKey) }
	if _, err := informer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue,
		UpdateFunc: func(oldObj, newObj any) {
			if routeChanged(oldObj, newObj) {
				enqueue(newObj)
			}
		},
		DeleteFunc: enqueue,
	}); err != nil {
		return fmt.Errorf("node routes: watching nodes: %w", err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	defer c.queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), c.synced) {
		// Only a cancelled context stops the wait; that is a shutdown, not a failure.
		return nil
	}
	logger.Info("Node routes controller started", "node", self)
	go func() {
		<-ctx.Done()
		c.queue.ShutDown()
	}()
	for c.processNext(ctx) {
	}
	return nil
}

func (c *nodeRoutes) processNext(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	if err := c.sync(ctx); err != nil {
		klog.FromContext(ctx).Error(err, "Syncing node routes; will retry", "retries", c.queue.NumRequeues(key))
		c.queue.AddRateLimited(key)
		return true
	}
	c.queue.Forget(key)
	return true
}

func (c *nodeRoutes) sync(ctx context.Context) error {
	nodes, err := c.lister.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("listing nodes: %w", err)
	}
	routes, skipped := desiredRoutes(c.self, nodes)
	logger := klog.FromContext(ctx)
	for name, why := range skipped {
		if why == reasonSameAddress {
			logger.Error(nil, "Node advertises this node's own address; its pods are unreachable until each node runs with its own --node-ip", "node", name)
			continue
		}
		logger.V(4).Info("No route to node's pods", "node", name, "reason", why)
	}
	return c.syncer.SyncRoutes(ctx, routes)
}

// reasonSameAddress: two nodes report one InternalIP, as VMs whose first interface is a NAT
// with the same address everywhere do when --node-ip is not set. A route via our own
// address would send the other node's pod traffic nowhere.
const reasonSameAddress = "same InternalIP as this node"

// desiredRoutes returns a route for each IPv4 pod CIDR of every node but self, via that
// node's first IPv4 InternalIP, sorted by destination. Nodes that cannot be routed to yet
// (no pod CIDR, no address) are returned in skipped with the reason; their routes appear once
// their agent reports them.
func desiredRoutes(self string, nodes []*corev1.Node) (routes []network.Route, skipped map[string]string) {
	skipped = map[string]string{}
	var selfIP net.IP
	for _, node := range nodes {
		if node.Name == self {
			selfIP = internalIPv4(node)
		}
	}
	for _, node := range nodes {
		if node.Name == self {
			continue
		}
		via := internalIPv4(node)
		if via == nil {
			skipped[node.Name] = "no IPv4 InternalIP"
			continue
		}
		if via.Equal(selfIP) {
			skipped[node.Name] = reasonSameAddress
			continue
		}
		cidrs := node.Spec.PodCIDRs
		if len(cidrs) == 0 && node.Spec.PodCIDR != "" {
			cidrs = []string{node.Spec.PodCIDR}
		}
		var found bool
		for _, cidr := range cidrs {
			if _, ipnet, err := net.ParseCIDR(cidr); err == nil && ipnet.IP.To4() != nil {
				routes = append(routes, network.Route{Dst: ipnet.String(), Via: via})
				found = true
			}
		}
		if !found {
			skipped[node.Name] = "no IPv4 pod CIDR"
		}
	}
	sort.Slice(routes, func(i, j int) bool { return routes[i].Dst < routes[j].Dst })
	return routes, skipped
}

// routeChanged filters the updates that matter: a node's pod CIDRs or InternalIP changed, or
// the informer's periodic resync (same resourceVersion), which re-applies the routes. Status
// heartbeats change neither.
func routeChanged(oldObj, newObj any) bool {
	oldNode, ok1 := oldObj.(*corev1.Node)
	newNode, ok2 := newObj.(*corev1.Node)
	if !ok1 || !ok2 || oldNode.ResourceVersion == newNode.ResourceVersion {
		return true
	}
	return oldNode.Spec.PodCIDR != newNode.Spec.PodCIDR ||
		!slices.Equal(oldNode.Spec.PodCIDRs, newNode.Spec.PodCIDRs) ||
		!internalIPv4(oldNode).Equal(internalIPv4(newNode))
}

func internalIPv4(node *corev1.Node) net.IP {
	for _, addr := range node.Status.Addresses {
		if addr.Type != corev1.NodeInternalIP {
			continue
		}
		if ip := net.ParseIP(addr.Address).To4(); ip != nil {
			return ip
		}
	}
	return nil
}
