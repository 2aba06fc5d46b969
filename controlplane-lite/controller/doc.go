// Package controller runs skiff's controllers against the apiserver, seen only through
// client-go (kubernetes.Interface, shared informers, typed rate-limited workqueues), in the
// style of k8s.io/sample-controller.
//
// A Manager hosts five controllers over one shared informer factory:
//
//   - the ReplicaSet controller keeps the number of active pods owned by each ReplicaSet at
//     spec.replicas: it adopts orphaned pods that match the selector and releases owned pods
//     that no longer match (ownerReferences patches, like kube's ControllerRefManager),
//     creates pods from the template (generateName "<rs>-", a controller ownerReference with
//     blockOwnerDeletion), deletes surplus pods preferring unscheduled, pending, not ready and
//     newest ones, records expectations so it does not act twice while its informers catch
//     up, and writes status through the status subresource only when it changed. It emits
//     SuccessfulCreate/SuccessfulDelete (and FailedCreate/FailedDelete) events.
//   - the garbage collector deletes dependents whose owners are all gone (background cascade,
//     so "kubectl delete rs" removes its pods), orphans the dependents of owners carrying the
//     "orphan" finalizer and implements foreground deletion (owners carrying the
//     "foregroundDeletion" finalizer wait until their blocking dependents are gone). Like
//     kube's, it covers every kind discovery reports as listable, watchable, patchable
//     and deletable, through metadata informers and the metadata client (Config.Metadata).
//   - the pod garbage collector force-deletes pods bound to nodes that no longer exist,
//     unscheduled pods that are terminating, and the oldest terminated pods above a threshold.
//   - the namespace cleaner is kube's namespace controller: a deleted namespace stays
//     Terminating with the "kubernetes" finalizer until the cleaner has deleted the objects
//     of every namespaced kind discovery reports in it; then it finalizes the namespace
//     (namespaces/finalize) and the apiserver removes it.
//   - the node lifecycle controller notices nodes whose agent stopped heartbeating (neither
//     its Lease in kube-node-lease nor its status moved for 50 s): it sets their
//     conditions to Unknown, taints them node.kubernetes.io/unreachable (NoSchedule and
//     NoExecute), marks their pods not ready, and evicts pods once the NoExecute taint is
//     no longer tolerated (tolerationSeconds, 300 s by the apiserver's defaults). The
//     taints go when the node reports Ready again.
//
// The apiserver is expected to implement the deletion side of the contract: DELETE with
// propagationPolicy Orphan or Foreground sets deletionTimestamp and adds the "orphan" or
// "foregroundDeletion" finalizer, and an object whose finalizers become empty after
// deletionTimestamp is set is removed.
//
// Controllers never mutate objects from the informer caches: they DeepCopy or send patches.
package controller
