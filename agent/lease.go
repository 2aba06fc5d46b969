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
func (a *Agent) runLease(ctx context.Context) {
	logger := klog.FromContext(ctx)
	interval := time.Duration(a.cfg.LeaseDurationSeconds) * time.Second / 4
	for {
		next := interval
		if err := a.renewLease(ctx); err != nil {
			logger.Error(err, "Renewing node lease")
			next = min(time.Second, interval)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(next):
		}
	}
}

func (a *Agent) renewLease(ctx context.Context) error {
	leases := a.cfg.Client.CoordinationV1().Leases(nodeLeaseNamespace)
	now := metav1.NewMicroTime(time.Now())
	lease, err := leases.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		lease = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName, Namespace: nodeLeaseNamespace}}
		a.fillLease(lease, now)
		if _, err := leases.Create(ctx, lease, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create lease: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("get lease: %w", err)
	}
	a.fillLease(lease, now)
	if _, err := leases.Update(ctx, lease, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update lease: %w", err)
	}
	return nil
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
