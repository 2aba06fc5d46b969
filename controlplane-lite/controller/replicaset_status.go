package controller

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
)

// calculateStatus derives rs's status from the active pods it owns.
func calculateStatus(rs *appsv1.ReplicaSet, owned []*corev1.Pod, terminating int32, manageErr error,
	now time.Time) appsv1.ReplicaSetStatus {
	status := *rs.Status.DeepCopy()
	templateLabels := labels.Set(rs.Spec.Template.Labels).AsSelectorPreValidated()
	var fullyLabeled, ready, available int32
	for _, pod := range owned {
		if templateLabels.Matches(labels.Set(pod.Labels)) {
			fullyLabeled++
		}
		if podReady(pod) {
			ready++
			if podAvailable(pod, rs.Spec.MinReadySeconds, now) {
				available++
			}
		}
	}
	status.Replicas = int32(len(owned))
	status.FullyLabeledReplicas = fullyLabeled
	status.ReadyReplicas = ready
	status.AvailableReplicas = available
	status.TerminatingReplicas = ptr.To(terminating)
	status.ObservedGeneration = rs.Generation
	status.Conditions = failureConditions(rs, status.Conditions, len(owned), manageErr, now)
	return status
}

// failureConditions sets or clears the ReplicaFailure condition after a failed create or
// delete, keeping its transition time while it stays the same.
func failureConditions(rs *appsv1.ReplicaSet, conds []appsv1.ReplicaSetCondition, active int, manageErr error,
	now time.Time) []appsv1.ReplicaSetCondition {
	var kept []appsv1.ReplicaSetCondition
	var existing *appsv1.ReplicaSetCondition
	for i := range conds {
		if conds[i].Type == appsv1.ReplicaSetReplicaFailure {
			existing = &conds[i]
			continue
		}
		kept = append(kept, conds[i])
	}
	if manageErr == nil {
		return kept
	}
	reason := reasonFailedCreate
	if active > int(replicas(rs)) {
		reason = reasonFailedDelete
	}
	cond := appsv1.ReplicaSetCondition{
		Type:               appsv1.ReplicaSetReplicaFailure,
		Status:             corev1.ConditionTrue,
		Reason:             reason,
		Message:            manageErr.Error(),
		LastTransitionTime: metav1.NewTime(now),
	}
	if existing != nil && existing.Status == cond.Status {
		cond.LastTransitionTime = existing.LastTransitionTime
	}
	return append(kept, cond)
}

// podAvailable reports whether pod has been ready for at least minReadySeconds.
func podAvailable(pod *corev1.Pod, minReadySeconds int32, now time.Time) bool {
	if !podReady(pod) {
		return false
	}
	if minReadySeconds == 0 {
		return true
	}
	since := readySince(pod)
	return !since.IsZero() && !since.Add(time.Duration(minReadySeconds)*time.Second).After(now)
}

// updateStatus writes status through the status subresource when it differs from what rs
// has; on a conflict it retries once on a fresh copy, like kube's replicaset controller.
func (c *replicaSetController) updateStatus(ctx context.Context, rs *appsv1.ReplicaSet,
	status appsv1.ReplicaSetStatus) (*appsv1.ReplicaSet, error) {
	if apiequality.Semantic.DeepEqual(rs.Status, status) {
		return rs, nil
	}
	client := c.client.AppsV1().ReplicaSets(rs.Namespace)
	const attempts = 2
	var err error
	for i := range attempts {
		rs.Status = status
		var updated *appsv1.ReplicaSet
		updated, err = client.UpdateStatus(ctx, rs, metav1.UpdateOptions{})
		if err == nil {
			klog.FromContext(ctx).V(4).Info("Updated status", "replicas", status.Replicas,
				"ready", status.ReadyReplicas, "available", status.AvailableReplicas)
			return updated, nil
		}
		if i == attempts-1 {
			break
		}
		fresh, getErr := client.Get(ctx, rs.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(getErr) {
			return rs, nil // deleted meanwhile: no status to keep
		}
		if getErr != nil {
			return nil, fmt.Errorf("update status of %s: %w (refetch: %w)", rsKey(rs), err, getErr)
		}
		rs = fresh
		status.ObservedGeneration = min(status.ObservedGeneration, fresh.Generation)
	}
	return nil, fmt.Errorf("update status of %s: %w", rsKey(rs), err)
}
