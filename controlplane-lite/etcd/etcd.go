package etcd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/klog/v2"
)

const (
	// DefaultClientPort and DefaultPeerPort are etcd's well-known ports.
	DefaultClientPort = 2379
	DefaultPeerPort   = 2380
	// DefaultName is the member name used when Config.Name is empty.
	DefaultName = "skiff"

	// readyTimeout bounds how long Start waits for the member to become ready when the
	// caller's context has no deadline; replaying a large WAL can take a while.
	readyTimeout = 2 * time.Minute
	// compactionRetention keeps about as much history as kube-apiserver's own compactor
	// (which compacts every 5 minutes) would.
	compactionRetention = "5m"
)

// Config configures the embedded etcd member.
type Config struct {
	// DataDir is the member directory (e.g. /var/lib/skiff/etcd). It is created if missing.
	DataDir string
	// ClientPort and PeerPort are the ports etcd listens on at 127.0.0.1; zero means
	// DefaultClientPort and DefaultPeerPort.
	ClientPort, PeerPort int
	// Name is the member name; empty means DefaultName. Keep it stable across restarts.
	Name string
}

// Server is a running embedded etcd member.
type Server struct {
	etcd      *embed.Etcd
	endpoints []string
	// logLevel is etcd's log level; Close raises it because etcd reports every listener it
	// shuts down as an error.
	logLevel  zap.AtomicLevel
	closeOnce sync.Once
}

// validate fills defaults and checks the configuration.
func (c *Config) validate() error {
	if c.DataDir == "" {
		return errors.New("etcd: DataDir is required")
	}
	if c.ClientPort == 0 {
		c.ClientPort = DefaultClientPort
	}
	if c.PeerPort == 0 {
		c.PeerPort = DefaultPeerPort
	}
	for _, p := range []int{c.ClientPort, c.PeerPort} {
		if p < 1 || p > 65535 {
			return fmt.Errorf("etcd: port %d out of range", p)
		}
	}
	if c.ClientPort == c.PeerPort {
		return fmt.Errorf("etcd: client and peer port are both %d", c.ClientPort)
	}
	if c.Name == "" {
		c.Name = DefaultName
	}
	return nil
}

// embedConfig translates Config into etcd's own configuration.
func (c Config) embedConfig(lg *zap.Logger) *embed.Config {
	clientURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(c.ClientPort))}
	peerURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(c.PeerPort))}

	ec := embed.NewConfig()
	ec.Name = c.Name
	ec.Dir = c.DataDir
	ec.ListenClientUrls = []url.URL{clientURL}
	ec.AdvertiseClientUrls = []url.URL{clientURL}
	ec.ListenPeerUrls = []url.URL{peerURL}
	ec.AdvertisePeerUrls = []url.URL{peerURL}
	ec.InitialCluster = ec.InitialClusterFromName(c.Name)
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg)
	ec.AutoCompactionMode = embed.CompactorModePeriodic
	ec.AutoCompactionRetention = compactionRetention
	// The gRPC gateway (JSON over HTTP) is not used by skiff or etcdctl.
	ec.EnableGRPCGateway = false
	return ec
}

// Start runs an etcd member and returns when it is ready to serve clients. Cancelling ctx
// aborts the start; once Start returned, the member runs until Close.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	// etcd wants its member dir private (0700) and warns otherwise.
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("etcd: create data dir: %w", err)
	}
	logger := klog.FromContext(ctx).WithValues("dataDir", cfg.DataDir, "clientPort", cfg.ClientPort)

	level := zap.NewAtomicLevelAt(zapcore.WarnLevel)
	start := time.Now()
	e, err := embed.StartEtcd(cfg.embedConfig(newZapLogger(logger, "etcd", level)))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("etcd: port %d or %d on 127.0.0.1 is already in use (is another etcd or skiff running? choose other ports): %w",
				cfg.ClientPort, cfg.PeerPort, err)
		}
		return nil, fmt.Errorf("etcd: start: %w", err)
	}
	s := &Server{etcd: e, logLevel: level}
	if err := waitReady(ctx, e); err != nil {
		s.Close()
		return nil, err
	}
	for _, u := range e.Config().AdvertiseClientUrls {
		s.endpoints = append(s.endpoints, u.String())
	}
	logger.Info("Embedded etcd ready", "endpoints", s.endpoints, "duration", time.Since(start))
	return s, nil
}

// waitReady blocks until e serves, fails, or ctx (bounded by readyTimeout) ends.
func waitReady(ctx context.Context, e *embed.Etcd) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	select {
	case <-e.Server.ReadyNotify():
		return nil
	case err := <-e.Err():
		return fmt.Errorf("etcd: failed while starting: %w", err)
	case <-ctx.Done():
		return fmt.Errorf("etcd: not ready: %w", context.Cause(ctx))
	}
}

// Endpoints returns the client URLs of the member, e.g. ["http://127.0.0.1:2379"].
func (s *Server) Endpoints() []string {
	return append([]string(nil), s.endpoints...)
}

// Err reports a fatal error of the running member (the channel is closed after Close).
func (s *Server) Err() <-chan error {
	return s.etcd.Err()
}

// Close stops the member gracefully; every committed write is on disk afterwards.
// Calling it again does nothing.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.logLevel.SetLevel(zapcore.FatalLevel)
		s.etcd.Close()
	})
	return nil
}
