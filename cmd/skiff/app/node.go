package app

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	internalapi "k8s.io/cri-api/pkg/apis"
	criclient "k8s.io/cri-client/pkg"
	"k8s.io/klog/v2"

	"github.com/skiff-sh/skiff/agent"
	"github.com/skiff-sh/skiff/cri"
	"github.com/skiff-sh/skiff/network"
)

func runCRI(ctx context.Context, o *Options) error {
	g, ctx := errgroup.WithContext(ctx)
	if _, _, err := startRuntime(ctx, g, o); err != nil {
		return err
	}
	return g.Wait()
}

func runAgent(ctx context.Context, o *Options) error {
	if o.Kubeconfig == "" {
		return fmt.Errorf("--kubeconfig is required: the agent needs the apiserver's address and credentials")
	}
	g, ctx := errgroup.WithContext(ctx)
	endpoint := o.RuntimeEndpoint
	var netManager *network.Manager
	if endpoint == "" {
		var err error
		if endpoint, netManager, err = startRuntime(ctx, g, o); err != nil {
			return err
		}
	}
	clientCA, err := writeClusterCA(o.Kubeconfig, o.agentClientCAFile())
	if err != nil {
		return err
	}
	// Without a serving certificate from the cluster CA the agent makes a self-signed one;
	// the apiserver does not verify kubelet serving certificates unless told to.
	if err := startAgent(ctx, g, o, o.Kubeconfig, endpoint, agentTLS{clientCAFile: clientCA}); err != nil {
		return err
	}
	if err := startNodeRoutes(ctx, g, o, o.Kubeconfig, netManager); err != nil {
		return err
	}
	return g.Wait()
}

// agentTLS is the kubelet API's TLS identity and the CA its callers' certificates chain to.
type agentTLS struct {
	servingCertFile, servingKeyFile, clientCAFile string
}

// writeClusterCA copies the cluster CA out of a kubeconfig, so that the kubelet API trusts
// the apiserver's client certificate, which that CA issued.
func writeClusterCA(kubeconfig, path string) (string, error) {
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		return "", fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	kubeContext, ok := cfg.Contexts[cfg.CurrentContext]
	if !ok {
		return "", fmt.Errorf("kubeconfig %s: no current context", kubeconfig)
	}
	cluster, ok := cfg.Clusters[kubeContext.Cluster]
	if !ok || len(cluster.CertificateAuthorityData) == 0 {
		return "", fmt.Errorf("kubeconfig %s: the current cluster has no certificate-authority-data", kubeconfig)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, cluster.CertificateAuthorityData, 0o644); err != nil {
		return "", fmt.Errorf("writing the cluster CA: %w", err)
	}
	return path, nil
}

// startRuntime starts containerd (unless --containerd names one), the pod network and the CRI
// server; it returns the CRI endpoint once the server listens, and the pod network.
func startRuntime(ctx context.Context, g *errgroup.Group, o *Options) (string, *network.Manager, error) {
	logger := klog.FromContext(ctx)
	containerdAddress := o.Containerd
	var child *cri.Containerd
	if containerdAddress == "" {
		var err error
		child, err = cri.StartContainerd(ctx, cri.ContainerdConfig{
			Binary:     o.ContainerdBinary,
			Address:    o.containerdSocket(),
			Root:       o.containerdRoot(),
			State:      o.containerdState(),
			ConfigPath: filepath.Join(o.containerdRoot(), "config.toml"),
		})
		if err != nil {
			return "", nil, fmt.Errorf("child containerd: %w", err)
		}
		containerdAddress = child.Address()
		logger.Info("Started containerd", "address", containerdAddress)
	}
	stopChild := func() {
		if child == nil {
			return
		}
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
		defer cancel()
		if err := child.Stop(stopCtx); err != nil {
			logger.Error(err, "Stopping containerd")
		}
	}

	netManager, err := network.New(o.networkConfig())
	if err != nil {
		stopChild()
		return "", nil, fmt.Errorf("pod network: %w", err)
	}
	server, err := cri.New(ctx, cri.Config{
		ContainerdAddress: containerdAddress,
		Namespace:         o.ContainerdNS,
		RootDir:           o.criRootDir(),
		StateDir:          o.criStateDir(),
		RegistryConfigDir: o.RegistryConfig,
		Network:           netManager,
		PauseImage:        o.PauseImage,
		AlwaysPause:       o.AlwaysPause,
	})
	if err != nil {
		stopChild()
		return "", nil, fmt.Errorf("CRI server: %w", err)
	}
	listening := make(chan struct{})
	g.Go(func() error {
		defer stopChild()
		defer server.Close()
		go waitForSocket(ctx, o.CRISocket, listening)
		return server.Serve(ctx, o.CRISocket)
	})
	select {
	case <-listening:
	case <-ctx.Done():
		return "", nil, ctx.Err()
	}
	logger.Info("CRI server listening", "socket", o.CRISocket)
	return "unix://" + o.CRISocket, netManager, nil
}

func waitForSocket(ctx context.Context, path string, ready chan<- struct{}) {
	for {
		if conn, err := net.Dial("unix", path); err == nil {
			conn.Close()
			close(ready)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// startAgent connects to the CRI endpoint and the apiserver and runs the agent in g.
func startAgent(ctx context.Context, g *errgroup.Group, o *Options, kubeconfig, endpoint string, tls agentTLS) error {
	runtimeService, err := dialRuntime(ctx, endpoint)
	if err != nil {
		return err
	}
	imageService, err := criclient.NewRemoteImageServiceBuilder().
		WithEndpoint(endpoint).WithConnectionTimeout(2 * time.Minute).Build(ctx)
	if err != nil {
		return fmt.Errorf("CRI image service at %s: %w", endpoint, err)
	}
	restConfig, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	restConfig.UserAgent = "skiff-agent/" + o.NodeName
	client, eventClient, leaseClient, err := agentClients(restConfig)
	if err != nil {
		return err
	}
	logRotation, err := o.logRotation()
	if err != nil {
		return err
	}
	a, err := agent.New(agent.Config{
		NodeName:        o.NodeName,
		Client:          client,
		EventClient:     eventClient,
		LeaseClient:     leaseClient,
		Runtime:         runtimeService,
		Images:          imageService,
		PodCIDR:         o.PodCIDR,
		NodeIP:          o.NodeIP,
		RootDir:         o.agentRootDir(),
		PodLogsDir:      o.podLogsDir(),
		KubeletPort:     o.KubeletPort,
		ServingCertFile: tls.servingCertFile,
		ServingKeyFile:  tls.servingKeyFile,
		ClientCAFile:    tls.clientCAFile,
		ImagePull:       o.imagePullConfig(),
		LogRotation:     logRotation,
	})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	g.Go(func() error { return a.Run(ctx) })
	return nil
}

func dialRuntime(ctx context.Context, endpoint string) (internalapi.RuntimeService, error) {
	runtimeService, err := criclient.NewRemoteRuntimeServiceBuilder().
		WithEndpoint(endpoint).WithConnectionTimeout(2 * time.Minute).Build(ctx)
	if err != nil {
		return nil, fmt.Errorf("CRI runtime service at %s: %w", endpoint, err)
	}
	return runtimeService, nil
}

// agentClients are the agent's apiserver clients, split as kubelet splits them: pod and
// node status under one rate limit, events under their own, and the lease heartbeat under
// none, with a timeout, so that no burst of the others delays a heartbeat.
func agentClients(base *rest.Config) (status, events, lease kubernetes.Interface, err error) {
	// kubelet's defaults: client-go's 5 requests/s would queue status writes behind each
	// other as soon as a few pods start together.
	statusConfig := rest.CopyConfig(base)
	statusConfig.QPS, statusConfig.Burst = 50, 100
	eventConfig := rest.CopyConfig(base)
	eventConfig.QPS, eventConfig.Burst = 50, 100
	leaseConfig := rest.CopyConfig(base)
	leaseConfig.QPS, leaseConfig.Timeout = -1, 10*time.Second // QPS < 0: no rate limiter
	for _, c := range []struct {
		cfg *rest.Config
		out *kubernetes.Interface
	}{{statusConfig, &status}, {eventConfig, &events}, {leaseConfig, &lease}} {
		cs, err := kubernetes.NewForConfig(c.cfg)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("apiserver client: %w", err)
		}
		*c.out = cs
	}
	return status, events, lease, nil
}
