package storage

import (
	"context"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// leases hands out etcd leases for objects that expire (Resource.TTL, e.g. Events). Like
// kube-apiserver, it reuses one lease for the writes of a short period instead of granting
// one per object, at the price of objects living up to that period longer.
type leases struct {
	client *clientv3.Client
	ttl    time.Duration
	reuse  time.Duration

	mu      sync.Mutex
	id      clientv3.LeaseID
	granted time.Time
}

func newLeases(client *clientv3.Client, ttl time.Duration) *leases {
	reuse := min(ttl/10, time.Minute)
	return &leases{client: client, ttl: ttl, reuse: max(reuse, time.Second)}
}

// putOptions returns the options that attach a write to a lease; none when there is no TTL.
func (l *leases) putOptions(ctx context.Context) ([]clientv3.OpOption, error) {
	if l == nil {
		return nil, nil
	}
	id, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return []clientv3.OpOption{clientv3.WithLease(id)}, nil
}

func (l *leases) get(ctx context.Context) (clientv3.LeaseID, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if l.id != 0 && now.Sub(l.granted) < l.reuse {
		return l.id, nil
	}
	// The lease outlives its reuse period so that the last object attached gets a full TTL.
	resp, err := l.client.Grant(ctx, int64((l.ttl + l.reuse).Seconds()))
	if err != nil {
		return 0, err
	}
	l.id, l.granted = resp.ID, now
	return l.id, nil
}
