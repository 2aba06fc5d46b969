package etcd

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/klog/v2"
)

const (
	dialTimeout = 5 * time.Second
	// checkTimeout bounds the first request NewClient makes when ctx has no deadline.
	checkTimeout = 10 * time.Second
)

// NewClient opens a client to endpoints ("127.0.0.1:2379" or "http://host:port") and checks
// with one read that the cluster answers, so that a wrong --etcd-servers fails at start and
// not on the first request. ctx bounds only that check; the client lives until Close.
func NewClient(ctx context.Context, endpoints []string) (*clientv3.Client, error) {
	if len(endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints")
	}
	// The client logs retries and reconnects at warn level; info is too chatty.
	lg := newZapLogger(klog.FromContext(ctx), "etcd-client", zap.NewAtomicLevelAt(zapcore.WarnLevel))
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: dialTimeout,
		Logger:      lg,
		// Keep the connection alive across idle periods so watches notice a dead server.
		DialKeepAliveTime:    30 * time.Second,
		DialKeepAliveTimeout: 10 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("etcd: client for %v: %w", endpoints, err)
	}
	checkCtx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	// A quorum read of a key that never exists: cheap, and proves the cluster has a leader.
	if _, err := c.Get(checkCtx, "/registry/.skiff-health", clientv3.WithCountOnly()); err != nil {
		c.Close()
		return nil, fmt.Errorf("etcd: %v not reachable: %w", endpoints, err)
	}
	return c, nil
}
