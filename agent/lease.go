package agent

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
)

// nodeLeaseNamespace holds one Lease per node, the node's cheap heartbeat.
const nodeLeaseNamespace = "kube-node-lease"

// runLease renews the node Lease every quarter of its duration, retrying sooner on errors.
// Each attempt is bounded by the renew interval, so one request stuck in a slow apiserver
// does not hold up the next renewal; the requests go over Config.LeaseClient, beside the
// pod status writes rather than behind them.
func (a *Agent) runLease(ctx context.Context) {
	logger := klog.FromContext(ctx)
	interval := time.Duration(a.cfg.LeaseDurationSeconds) * time.Second / 4
	var last *coordinationv1.Lease // the lease as last written, renewed without a read
	for {
		next := interval
		attempt, cancel := context.WithTimeout(ctx, interval)
		lease, err := a.renewLease(attempt, last)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			logger.Error(err, "Renewing node lease")
			next = min(time.Second, interval)
		}
		last = lease
		select {
		case <-ctx.Done():
			return
		case <-time.After(next):
		}
	}
}

// renewLease writes the lease with a fresh renew time: an update of last when there is
// one (a heartbeat is one request, as with kubelet), else of the lease read from the
// apiserver, created when missing. It returns the lease written, or nil after an error
// (so that the next attempt reads it again).
func (a *Agent) renewLease(ctx context.Context, last *coordinationv1.Lease) (*coordinationv1.Lease, error) {
	leases := a.cfg.LeaseClient.CoordinationV1().Leases(nodeLeaseNamespace)
	now := metav1.NewMicroTime(time.Now())
	if last != nil {
		lease := last.DeepCopy()
		a.fillLease(lease, now)
		if updated, err := leases.Update(ctx, lease, metav1.UpdateOptions{}); err == nil {
			return updated, nil
		} else if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("update lease: %w", err)
		}
	}
	lease, err := leases.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		lease = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName, Namespace: nodeLeaseNamespace}}
		a.fillLease(lease, now)
		created, err := leases.Create(ctx, lease, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("create lease: %w", err)
		}
		return created, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get lease: %w", err)
	}
	a.fillLease(lease, now)
	updated, err := leases.Update(ctx, lease, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("update lease: %w", err)
	}
	return updated, nil
}

// fillLease sets holder, duration, renew time, and the owner reference to our Node once
// its UID is known (so the Lease goes away with the Node).
func (a *Agent) fillLease(lease *coordinationv1.Lease, now metav1.MicroTime) {
	lease.Spec.HolderIdentity = ptr.To(a.cfg.NodeName)
	lease.Spec.LeaseDurationSeconds = ptr.To(a.cfg.LeaseDurationSeconds)
	lease.Spec.RenewTime = &now
	uid := a.getNodeUID()
	if uid == "" {
		return
	}
	lease.OwnerReferences = []metav1.OwnerReference{{
		APIVersion: "v1", Kind: "Node", Name: a.cfg.NodeName, UID: uid,
	}}
}
