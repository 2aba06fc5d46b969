package controller

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
)

// Pod GC tunables, kube-controller-manager's defaults.
const (
	podGCPeriod              = 20 * time.Second
	orphanQuarantine         = 40 * time.Second
	terminatedPodGCThreshold = 12500
)

// podGC removes pods nobody else will: pods bound to nodes that no longer exist, pods
// that never got a node but are terminating, and the oldest finished pods above a
// threshold.
type podGC struct {
	client    kubernetes.Interface
	pods      corelisters.PodLister
	nodes     corelisters.NodeLister
	synced    []cache.InformerSynced
	threshold int
	now       func() time.Time
	// missingSince remembers when a node was first found missing, so a node that is only
	// late to (re)register is not treated as gone at once.
	missingSince map[string]time.Time
}

func newPodGC(client kubernetes.Interface, podInformer coreinformers.PodInformer,
	nodeInformer coreinformers.NodeInformer) *podGC {
	return &podGC{
		client:       client,
		pods:         podInformer.Lister(),
		nodes:        nodeInformer.Lister(),
		synced:       []cache.InformerSynced{podInformer.Informer().HasSynced, nodeInformer.Informer().HasSynced},
		threshold:    terminatedPodGCThreshold,
		now:          time.Now,
		missingSince: map[string]time.Time{},
	}
}

func (gc *podGC) run(ctx context.Context) {
	runPeriodic(ctx, "pod garbage collector", gc.synced, podGCPeriod, gc.gc)
}

// gc runs one pass; it is only ever called from one goroutine.
func (gc *podGC) gc(ctx context.Context) error {
	pods, err := gc.pods.List(labels.Everything())
	if err != nil {
		return err
	}
	return errors.Join(
		gc.gcTerminated(ctx, pods),
		gc.gcOrphaned(ctx, pods),
		gc.gcUnscheduledTerminating(ctx, pods),
	)
}

func (gc *podGC) gcTerminated(ctx context.Context, pods []*corev1.Pod) error {
	var done []*corev1.Pod
	for _, pod := range pods {
		if podTerminal(pod) && pod.DeletionTimestamp == nil {
			done = append(done, pod)
		}
	}
	excess := len(done) - gc.threshold
	if gc.threshold <= 0 || excess <= 0 {
		return nil
	}
	sort.Slice(done, func(i, j int) bool {
		return done[i].CreationTimestamp.Before(&done[j].CreationTimestamp)
	})
	var errs []error
	for _, pod := range done[:excess] {
		errs = append(errs, gc.forceDelete(ctx, pod, "terminated pods above threshold"))
	}
	return errors.Join(errs...)
}

// gcOrphaned force-deletes pods bound to nodes that have been missing for the quarantine
// period, as confirmed by the apiserver: no agent will ever finish them.
func (gc *podGC) gcOrphaned(ctx context.Context, pods []*corev1.Pod) error {
	now := gc.now()
	missing := map[string]bool{}
	var errs []error
	for _, pod := range pods {
		node := pod.Spec.NodeName
		if node == "" {
			continue
		}
		gone, known := missing[node]
		if !known {
			var err error
			gone, err = gc.nodeGone(ctx, node, now)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			missing[node] = gone
		}
		if gone {
			errs = append(errs, gc.forceDelete(ctx, pod, "node "+node+" no longer exists"))
		}
	}
	for node := range gc.missingSince {
		if _, seen := missing[node]; !seen {
			delete(gc.missingSince, node) // no pods left on it
		}
	}
	return errors.Join(errs...)
}

// nodeGone reports whether node has been missing for at least the quarantine period.
func (gc *podGC) nodeGone(ctx context.Context, node string, now time.Time) (bool, error) {
	if _, err := gc.nodes.Get(node); err == nil {
		delete(gc.missingSince, node)
		return false, nil
	}
	first, ok := gc.missingSince[node]
	if !ok {
		gc.missingSince[node] = now
		return false, nil
	}
	if now.Sub(first) < orphanQuarantine {
		return false, nil
	}
	_, err := gc.client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("check node %s: %w", node, err)
	}
	delete(gc.missingSince, node) // the cache was behind
	return false, nil
}

// gcUnscheduledTerminating finishes the deletion of pods that never reached a node: no
// agent is there to confirm their termination.
func (gc *podGC) gcUnscheduledTerminating(ctx context.Context, pods []*corev1.Pod) error {
	var errs []error
	for _, pod := range pods {
		if pod.DeletionTimestamp != nil && pod.Spec.NodeName == "" {
			errs = append(errs, gc.forceDelete(ctx, pod, "unscheduled pod is terminating"))
		}
	}
	return errors.Join(errs...)
}

func (gc *podGC) forceDelete(ctx context.Context, pod *corev1.Pod, why string) error {
	klog.FromContext(ctx).Info("Force-deleting pod", "pod", klog.KObj(pod), "reason", why)
	uid := pod.UID
	err := gc.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      &metav1.Preconditions{UID: &uid},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete pod %s: %w", podKey(pod), err)
	}
	return nil
}
