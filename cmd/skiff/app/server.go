package app

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/skiff-sh/skiff/controlplane-lite/apiserver"
	"github.com/skiff-sh/skiff/controlplane-lite/apiserver/registry"
	"github.com/skiff-sh/skiff/controlplane-lite/apiserver/storage"
	"github.com/skiff-sh/skiff/controlplane-lite/controller"
	"github.com/skiff-sh/skiff/controlplane-lite/etcd"
	"github.com/skiff-sh/skiff/controlplane-lite/openapi"
	"github.com/skiff-sh/skiff/controlplane-lite/pki"
	"github.com/skiff-sh/skiff/controlplane-lite/scheduler"
)

func runServer(ctx context.Context, o *Options) error {
	g, ctx := errgroup.WithContext(ctx)
	if _, err := startControlPlane(ctx, g, o); err != nil {
		return err
	}
	return g.Wait()
}

// controlPlane is what a started control plane hands to the node half of `skiff up`.
type controlPlane struct {
	ca     *pki.CA
	server string // https URL of the apiserver on loopback
}

// startControlPlane starts etcd (unless external), the apiserver, and the controllers and
// scheduler, each as a goroutine of g; it returns once the apiserver answers.
func startControlPlane(ctx context.Context, g *errgroup.Group, o *Options) (*controlPlane, error) {
	ca, err := pki.EnsureCA(o.pkiDir())
	if err != nil {
		return nil, fmt.Errorf("cluster CA: %w", err)
	}
	etcdClient, err := startEtcd(ctx, g, o)
	if err != nil {
		return nil, err
	}
	srv, err := newAPIServer(ctx, o, ca, etcdClient)
	if err != nil {
		etcdClient.Close()
		return nil, err
	}
	g.Go(func() error {
		defer etcdClient.Close()
		return srv.Run(ctx)
	})

	cp := &controlPlane{ca: ca, server: fmt.Sprintf("https://127.0.0.1:%d", o.APIServerPort)}
	if err := cp.writeAdminKubeconfig(o.KubeconfigOut); err != nil {
		return nil, err
	}
	if err := cp.waitReady(ctx); err != nil {
		return nil, err
	}
	klog.FromContext(ctx).Info("Apiserver ready", "url", cp.server, "kubeconfig", o.KubeconfigOut)

	if o.DisableControllers {
		return cp, nil
	}
	if err := startControllers(ctx, g, cp); err != nil {
		return nil, err
	}
	return cp, nil
}

// startEtcd starts the embedded etcd unless --etcd-servers names an external one, and
// returns a client to it; the caller closes the client.
func startEtcd(ctx context.Context, g *errgroup.Group, o *Options) (*clientv3.Client, error) {
	endpoints := o.EtcdServers
	if len(endpoints) == 0 {
		embedded, err := etcd.Start(ctx, etcd.Config{DataDir: o.etcdDir(), ClientPort: o.EtcdClientPort, PeerPort: o.EtcdPeerPort, Name: "skiff"})
		if err != nil {
			return nil, fmt.Errorf("embedded etcd: %w", err)
		}
		g.Go(func() error {
			<-ctx.Done()
			return embedded.Close()
		})
		endpoints = embedded.Endpoints()
	}
	etcdClient, err := etcd.NewClient(ctx, endpoints)
	if err != nil {
		return nil, fmt.Errorf("etcd client for %v: %w", endpoints, err)
	}
	return etcdClient, nil
}

// newStores opens a Store on etcd for each served resource.
func newStores(ctx context.Context, etcdClient *clientv3.Client, defs []registry.Definition) (map[schema.GroupResource]storage.Store, error) {
	stores := make(map[schema.GroupResource]storage.Store, len(defs))
	for _, def := range defs {
		store, err := storage.New(ctx, etcdClient, def.Resource)
		if err != nil {
			return nil, fmt.Errorf("storage for %s: %w", def.GroupResource, err)
		}
		stores[def.GroupResource] = store
	}
	return stores, nil
}

// newAPIServer builds the apiserver on etcd: stores, OpenAPI, default namespaces and
// the certificates it serves and proxies with.
func newAPIServer(ctx context.Context, o *Options, ca *pki.CA, etcdClient *clientv3.Client) (*apiserver.Server, error) {
	certFile, keyFile, err := ca.EnsureServingCert("apiserver", servingHosts())
	if err != nil {
		return nil, fmt.Errorf("apiserver serving certificate: %w", err)
	}
	defs := registry.Definitions()
	stores, err := newStores(ctx, etcdClient, defs)
	if err != nil {
		return nil, err
	}
	openAPI, err := openapi.New(openAPIResources(defs))
	if err != nil {
		return nil, fmt.Errorf("openapi documents: %w", err)
	}
	// Server-side apply and managedFields need the schemas as a structured-merge type set.
	typeConverter, err := managedfields.NewTypeConverter(openAPI.Schemas(), false)
	if err != nil {
		return nil, fmt.Errorf("server-side apply type converter: %w", err)
	}
	if err := apiserver.EnsureDefaultNamespaces(ctx, stores[schema.GroupResource{Resource: "namespaces"}]); err != nil {
		return nil, fmt.Errorf("default namespaces: %w", err)
	}
	// The apiserver proxies pods/log, exec, attach and port-forward to kubelets with this.
	kubeletClientCert, kubeletClientKey, err := ca.EnsureClientCert("apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"})
	if err != nil {
		return nil, fmt.Errorf("apiserver kubelet client certificate: %w", err)
	}
	srv, err := apiserver.New(apiserver.Config{
		BindAddress:   o.BindAddress,
		Port:          o.APIServerPort,
		TLSCertFile:   certFile,
		TLSKeyFile:    keyFile,
		ClientCAFile:  ca.CertFile(),
		Definitions:   defs,
		Stores:        stores,
		OpenAPI:       openAPI,
		TypeConverter: typeConverter,
		HealthChecks:  []apiserver.HealthCheck{etcdHealthCheck(etcdClient)},

		KubeletClientCertFile: kubeletClientCert,
		KubeletClientKeyFile:  kubeletClientKey,
	})
	if err != nil {
		return nil, fmt.Errorf("apiserver: %w", err)
	}
	return srv, nil
}

// etcdHealthCheck is kube-apiserver's etcd check: a quorum read, which fails when etcd
// has no leader or does not answer.
func etcdHealthCheck(etcdClient *clientv3.Client) apiserver.HealthCheck {
	return apiserver.HealthCheck{Name: "etcd", Check: func(ctx context.Context) error {
		_, err := etcdClient.Get(ctx, "/registry/.skiff-health", clientv3.WithCountOnly())
		return err
	}}
}

// writeAdminKubeconfig writes the kubeconfig of the cluster admin to path.
func (cp *controlPlane) writeAdminKubeconfig(path string) error {
	adminCert, adminKey, err := cp.ca.EnsureClientCert("admin", "kubernetes-admin", []string{"system:masters"})
	if err != nil {
		return fmt.Errorf("admin certificate: %w", err)
	}
	if err := pki.WriteKubeconfig(path, cp.server, cp.ca, adminCert, adminKey, "admin"); err != nil {
		return fmt.Errorf("admin kubeconfig: %w", err)
	}
	return nil
}

func startControllers(ctx context.Context, g *errgroup.Group, cp *controlPlane) error {
	controllerConfig, err := cp.restConfig("controller-manager", "system:kube-controller-manager", nil)
	if err != nil {
		return err
	}
	controllerConfig.UserAgent = "controller-manager"
	controllerClient, err := kubernetes.NewForConfig(controllerConfig)
	if err != nil {
		return fmt.Errorf("controller client: %w", err)
	}
	// The garbage collector and the namespace cleaner work on any kind as metadata.
	metadataClient, err := metadata.NewForConfig(controllerConfig)
	if err != nil {
		return fmt.Errorf("controller metadata client: %w", err)
	}
	manager, err := controller.New(controller.Config{Client: controllerClient, Metadata: metadataClient, Workers: 4})
	if err != nil {
		return fmt.Errorf("controllers: %w", err)
	}
	g.Go(func() error { return manager.Run(ctx) })

	schedulerClient, err := cp.clientset("scheduler", "system:kube-scheduler", nil)
	if err != nil {
		return err
	}
	sched, err := scheduler.New(scheduler.Config{Client: schedulerClient})
	if err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	g.Go(func() error { return sched.Run(ctx) })
	return nil
}

// restConfig returns a client config for the loopback apiserver with a client certificate
// issued by the cluster CA to user (with groups).
func (cp *controlPlane) restConfig(certName, user string, groups []string) (*rest.Config, error) {
	certFile, keyFile, err := cp.ca.EnsureClientCert(certName, user, groups)
	if err != nil {
		return nil, fmt.Errorf("client certificate for %s: %w", user, err)
	}
	return &rest.Config{
		Host: cp.server,
		TLSClientConfig: rest.TLSClientConfig{
			CAFile:   cp.ca.CertFile(),
			CertFile: certFile,
			KeyFile:  keyFile,
		},
		QPS:   100,
		Burst: 200,
	}, nil
}

func (cp *controlPlane) clientset(certName, user string, groups []string) (kubernetes.Interface, error) {
	cfg, err := cp.restConfig(certName, user, groups)
	if err != nil {
		return nil, err
	}
	cfg.UserAgent = certName
	return kubernetes.NewForConfig(cfg)
}

// waitReady polls /readyz until the apiserver answers, so that the components started after
// it do not begin with a burst of connection errors.
func (cp *controlPlane) waitReady(ctx context.Context) error {
	client, err := cp.clientset("admin", "kubernetes-admin", []string{"system:masters"})
	if err != nil {
		return err
	}
	waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var lastErr error
	for {
		_, lastErr = client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(waitCtx)
		if lastErr == nil {
			return nil
		}
		select {
		case <-waitCtx.Done():
			if cause := context.Cause(ctx); cause != nil {
				// The apiserver (or etcd) stopped; its error says why.
				return cause
			}
			return fmt.Errorf("apiserver at %s did not become ready: %w", cp.server, lastErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// servingHosts lists the names and addresses the apiserver certificate must cover.
func servingHosts() []string {
	hosts := []string{"127.0.0.1", "::1", "localhost", "kubernetes", "kubernetes.default",
		"kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	if name, err := os.Hostname(); err == nil {
		hosts = append(hosts, name)
	}
	addrs, _ := net.InterfaceAddrs()
	for _, addr := range addrs {
		if ipNet, ok := addr.(*net.IPNet); ok && !ipNet.IP.IsLoopback() && !ipNet.IP.IsLinkLocalUnicast() {
			hosts = append(hosts, ipNet.IP.String())
		}
	}
	return hosts
}

// openAPIResources describes the served resources to the OpenAPI builder.
func openAPIResources(defs []registry.Definition) []openapi.Resource {
	resources := make([]openapi.Resource, 0, len(defs))
	for _, def := range defs {
		r := openapi.Resource{
			GroupVersion: def.GroupVersionKind.GroupVersion(),
			Plural:       def.GroupResource.Resource,
			Kind:         def.GroupVersionKind.Kind,
			ListKind:     def.ListKind,
			Namespaced:   def.Namespaced,
			Verbs:        def.Verbs,
			Subresources: map[string]openapi.SubresourceInfo{},
		}
		for name, sub := range def.Subresources {
			r.Subresources[name] = openapi.SubresourceInfo{GroupVersionKind: sub.GroupVersionKind, Verbs: sub.Verbs}
		}
		resources = append(resources, r)
	}
	return resources
}
