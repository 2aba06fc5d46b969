package cri

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// Names of what skiff stores in containerd. The kind label tells our sandboxes and
// containers apart from anything else in the namespace.
const (
	labelKind      = "sh.skiff.cri/kind"
	labelSandboxID = "sh.skiff.cri/sandbox-id"
	// labelRemoving marks a container RemoveContainer has removed from the CRI's view
	// whose deletion from containerd is still under way.
	labelRemoving   = "sh.skiff.cri/removing"
	labelPinned     = "sh.skiff.cri/pinned"
	labelManaged    = "sh.skiff.cri/managed"
	kindSandbox     = "sandbox"
	kindContainer   = "container"
	extMetadata     = "sh.skiff.cri/metadata"
	extStatus       = "sh.skiff.cri/status"
	runcRuntimeName = "io.containerd.runc.v2"
)

// Identity reported by Version.
const (
	runtimeName       = "skiff"
	runtimeVersion    = "0.1.0"
	runtimeAPIVersion = "v1"
)

// Server is skiff's CRI server: RuntimeService and ImageService over containerd.
type Server struct {
	svc *service
}

// service implements the CRI RPCs; Server keeps them out of its exported API.
type service struct {
	cfg    Config
	client *containerd.Client
	store  *store
	images *imageCache
	oom    oomPolicy
	stream *streamServer
	events *eventHub
	// features is probed once in New; read-only afterwards.
	features runtimeFeatures

	// lifetime is the context of background work (exit and event watchers);
	// Close cancels it.
	lifetime context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// New validates cfg, connects to containerd, imports the embedded pause image and
// rebuilds the sandbox and container stores from what containerd holds in cfg.Namespace.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	logger := klog.FromContext(ctx).WithName("cri")
	for _, dir := range []string{cfg.RootDir, cfg.StateDir} {
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
	}
	client, err := containerd.New(cfg.ContainerdAddress,
		containerd.WithDefaultNamespace(cfg.Namespace), containerd.WithTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("connect to containerd at %s: %w", cfg.ContainerdAddress, err)
	}
	lifetime, cancel := context.WithCancel(klog.NewContext(context.WithoutCancel(ctx), logger))
	s := &service{
		cfg:      cfg,
		client:   client,
		store:    newStore(),
		images:   newImageCache(),
		oom:      newOOMPolicy(),
		events:   newEventHub(),
		features: probeRuntimeFeatures(klog.NewContext(ctx, logger)),
		lifetime: lifetime,
		cancel:   cancel,
	}
	if err := s.start(klog.NewContext(ctx, logger)); err != nil {
		cancel()
		s.wg.Wait()
		client.Close()
		return nil, err
	}
	// Listening now makes the streaming URLs valid from the first RPC on; Serve answers them.
	if s.stream, err = newStreamServer(s.lifetime, cfg.StreamAddress, streamRuntime{s: s}); err != nil {
		cancel()
		s.wg.Wait()
		client.Close()
		return nil, err
	}
	return &Server{svc: s}, nil
}

func (s *service) start(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	ctx = s.ns(ctx)
	v, err := s.client.Version(ctx)
	if err != nil {
		return fmt.Errorf("containerd at %s does not answer: %w", s.cfg.ContainerdAddress, err)
	}
	logger.Info("Connected to containerd", "version", v.Version, "namespace", s.cfg.Namespace)
	if !s.oom.canLower {
		logger.Info("Host denies lowering oom_score_adj (no CAP_SYS_RESOURCE); clamping container OOM scores",
			"minimum", s.oom.own)
	}
	if err := s.importPauseImage(ctx); err != nil {
		return err
	}
	if err := s.installPauseBinary(); err != nil {
		return err
	}
	if err := s.recover(ctx); err != nil {
		return fmt.Errorf("rebuild state from containerd: %w", err)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.watchEvents(s.ns(s.lifetime))
	}()
	return nil
}

// ns scopes a context to our containerd namespace.
func (s *service) ns(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, s.cfg.Namespace)
}

// cleanupTimeout bounds a containerd call that must not be cut short by the server's
// shutdown (cleanupContext).
const cleanupTimeout = 30 * time.Second

// cleanupContext is for containerd calls made in the background that must finish once
// begun: containerd carries out a task deletion in steps (the shim's delete, then its
// shutdown once it has no task left), and a cancelled one can leave an idle shim behind.
func (s *service) cleanupContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(s.ns(s.lifetime)), cleanupTimeout)
}

// Serve serves the CRI gRPC API on a unix socket, and the streaming server on
// Config.StreamAddress, until ctx ends.
func (srv *Server) Serve(ctx context.Context, socketPath string) error {
	s := srv.svc
	logger := klog.FromContext(ctx).WithName("cri")
	if err := os.MkdirAll(filepath.Dir(socketPath), 0o711); err != nil {
		return fmt.Errorf("create socket directory: %w", err)
	}
	if err := os.Remove(socketPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	l, err := net.Listen("unix", socketPath)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", socketPath, err)
	}
	g := grpc.NewServer(
		grpc.UnaryInterceptor(s.interceptor(logger)),
		grpc.StreamInterceptor(s.streamInterceptor(logger)),
		grpc.MaxRecvMsgSize(16<<20), grpc.MaxSendMsgSize(16<<20))
	runtimeapi.RegisterRuntimeServiceServer(g, runtimeServer{service: s})
	runtimeapi.RegisterImageServiceServer(g, imageServer{service: s})

	streamCtx, stopStream := context.WithCancel(klog.NewContext(ctx, logger))
	defer stopStream()
	streamErr := make(chan error, 1)
	go func() { streamErr <- s.stream.serve(streamCtx) }()
	errCh := make(chan error, 1)
	go func() { errCh <- g.Serve(l) }()
	logger.Info("Serving CRI", "socket", socketPath)
	select {
	case err := <-errCh:
		return fmt.Errorf("serve CRI: %w", err)
	case err := <-streamErr:
		// Without streaming, exec/attach/port-forward would fail one by one; fail loudly.
		g.Stop()
		_ = os.Remove(socketPath)
		return fmt.Errorf("streaming server stopped: %w", err)
	case <-ctx.Done():
	}
	stopStream()
	// Event streams never end on their own; end them so GracefulStop need not wait.
	s.events.closeAll()
	stopped := make(chan struct{})
	go func() { g.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		g.Stop()
	}
	_ = os.Remove(socketPath)
	return nil
}

// Close stops background watchers and disconnects from containerd. Containers keep running.
func (srv *Server) Close() error {
	s := srv.svc
	s.cancel() // also ends streaming sessions in progress
	streamErr := s.stream.close()
	s.wg.Wait()
	return errors.Join(streamErr, s.client.Close())
}

// runtimeServer and imageServer register the service for each gRPC API. The
// Unimplemented servers sit one embedding level deeper so that the service's
// methods win and everything else answers codes.Unimplemented.
type runtimeServer struct {
	*service
	unimplementedRuntime
}

type unimplementedRuntime struct {
	runtimeapi.UnimplementedRuntimeServiceServer
}

type imageServer struct {
	*service
	unimplementedImage
}

type unimplementedImage struct {
	runtimeapi.UnimplementedImageServiceServer
}

// interceptor logs every RPC and turns errors into gRPC status errors.
func (s *service) interceptor(logger klog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		rpcLogger := logger.WithValues("rpc", path.Base(info.FullMethod))
		ctx = klog.NewContext(ctx, rpcLogger)
		start := time.Now()
		defer func() {
			// A bug in one RPC must not take down every pod's runtime.
			if r := recover(); r != nil {
				rpcLogger.Error(nil, "RPC panicked", "panic", r, "stack", string(debug.Stack()))
				resp, err = nil, status.Errorf(codes.Internal, "internal error in %s: %v", info.FullMethod, r)
			}
		}()
		resp, err = handler(ctx, req)
		if err == nil {
			rpcLogger.V(4).Info("RPC done", "duration", time.Since(start))
			return resp, nil
		}
		err = toGRPC(err)
		switch status.Code(err) {
		case codes.Unknown, codes.Internal:
			rpcLogger.Error(err, "RPC failed", "duration", time.Since(start))
		default:
			rpcLogger.V(2).Info("RPC failed", "err", err, "duration", time.Since(start))
		}
		return nil, err
	}
}

// streamInterceptor does for streaming RPCs (GetContainerEvents) what interceptor
// does for unary ones.
func (s *service) streamInterceptor(logger klog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		rpcLogger := logger.WithValues("rpc", path.Base(info.FullMethod))
		start := time.Now()
		defer func() {
			if r := recover(); r != nil {
				rpcLogger.Error(nil, "RPC panicked", "panic", r, "stack", string(debug.Stack()))
				err = status.Errorf(codes.Internal, "internal error in %s: %v", info.FullMethod, r)
			}
		}()
		rpcLogger.V(4).Info("Stream opened")
		if err = handler(srv, ss); err != nil {
			err = toGRPC(err)
			rpcLogger.V(2).Info("Stream ended", "err", err, "duration", time.Since(start))
			return err
		}
		rpcLogger.V(4).Info("Stream ended", "duration", time.Since(start))
		return nil
	}
}

// toGRPC maps errdefs and context errors to gRPC codes, keeping the message.
func toGRPC(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return errgrpc.ToGRPC(err)
}

// Version reports the runtime's identity.
func (s *service) Version(ctx context.Context, _ *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{
		Version:           "0.1.0",
		RuntimeName:       runtimeName,
		RuntimeVersion:    runtimeVersion,
		RuntimeApiVersion: runtimeAPIVersion,
	}, nil
}

// Status reports runtime and network readiness.
func (s *service) Status(ctx context.Context, _ *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	runtimeCond := &runtimeapi.RuntimeCondition{Type: runtimeapi.RuntimeReady, Status: true}
	if serving, err := s.client.IsServing(ctx); err != nil || !serving {
		runtimeCond.Status = false
		runtimeCond.Reason = "ContainerdUnavailable"
		runtimeCond.Message = fmt.Sprintf("containerd at %s is not serving: %v", s.cfg.ContainerdAddress, err)
	}
	netCond := &runtimeapi.RuntimeCondition{Type: runtimeapi.NetworkReady, Status: true}
	if err := s.networkReady(); err != nil {
		netCond.Status = false
		netCond.Reason = "NetworkPluginNotReady"
		netCond.Message = fmt.Sprintf("network plugin is not ready: %v", err)
	}
	return &runtimeapi.StatusResponse{
		Status: &runtimeapi.RuntimeStatus{
			Conditions: []*runtimeapi.RuntimeCondition{runtimeCond, netCond},
		},
		RuntimeHandlers: s.features.runtimeHandlers(),
		// ContainerStatus reports the process identity and Strict leaves out the
		// image's /etc/group (withUser), which is all the policy needs.
		Features: &runtimeapi.RuntimeFeatures{SupplementalGroupsPolicy: true},
	}, nil
}

func (s *service) networkReady() error {
	if s.cfg.Network == nil {
		return errors.New("no pod network configured")
	}
	return s.cfg.Network.Ready()
}

// RuntimeConfig tells the kubelet which cgroup driver we use: cgroupfs paths
// (parent + "/" + ID), never systemd slices.
func (s *service) RuntimeConfig(context.Context, *runtimeapi.RuntimeConfigRequest) (*runtimeapi.RuntimeConfigResponse, error) {
	return &runtimeapi.RuntimeConfigResponse{Linux: &runtimeapi.LinuxRuntimeConfiguration{
		CgroupDriver: runtimeapi.CgroupDriver_CGROUPFS,
	}}, nil
}

// UpdateRuntimeConfig hands the node's pod CIDR to the network.
func (s *service) UpdateRuntimeConfig(ctx context.Context, req *runtimeapi.UpdateRuntimeConfigRequest) (*runtimeapi.UpdateRuntimeConfigResponse, error) {
	cidr := req.GetRuntimeConfig().GetNetworkConfig().GetPodCidr()
	if cidr == "" {
		return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
	}
	if s.cfg.Network == nil {
		return nil, fmt.Errorf("no pod network to configure: %w", errdefs.ErrFailedPrecondition)
	}
	if err := s.cfg.Network.SetPodCIDR(cidr); err != nil {
		return nil, fmt.Errorf("set pod CIDR %q: %w", cidr, err)
	}
	klog.FromContext(ctx).Info("Updated pod CIDR", "cidr", cidr)
	return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
}
