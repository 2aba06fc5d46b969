package agent

import (
	"strconv"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// The labels and annotations the agent puts on sandboxes and containers. The io.kubernetes.*
// keys are the kubelet's, so crictl and other tools show skiff pods as they show kubelet pods.
// State that must survive an agent restart (restart count, spec hash, grace period) lives
// here, in the runtime, rather than on the agent's disk.
const (
	labelPodName       = "io.kubernetes.pod.name"
	labelPodNamespace  = "io.kubernetes.pod.namespace"
	labelPodUID        = "io.kubernetes.pod.uid"
	labelContainerName = "io.kubernetes.container.name"
	// labelNode marks what this agent created. The agent lists, adopts and removes only
	// sandboxes and containers carrying it with its own node name, so it can share a runtime
	// with other agents or a kubelet without touching their pods.
	labelNode = "io.skiff.node"

	annotationRestartCount             = "io.kubernetes.container.restartCount"
	annotationContainerHash            = "io.kubernetes.container.hash"
	annotationTerminationMessagePath   = "io.kubernetes.container.terminationMessagePath"
	annotationTerminationMessagePolicy = "io.kubernetes.container.terminationMessagePolicy"
	annotationGracePeriod              = "io.kubernetes.pod.terminationGracePeriod"
)

func (a *Agent) sandboxLabels(pod *v1.Pod) map[string]string {
	labels := make(map[string]string, len(pod.Labels)+4)
	for k, v := range pod.Labels {
		labels[k] = v
	}
	labels[labelPodName] = pod.Name
	labels[labelPodNamespace] = pod.Namespace
	labels[labelPodUID] = string(pod.UID)
	labels[labelNode] = a.cfg.NodeName
	return labels
}

func (a *Agent) containerLabels(pod *v1.Pod, c *v1.Container) map[string]string {
	return map[string]string{
		labelPodName:       pod.Name,
		labelPodNamespace:  pod.Namespace,
		labelPodUID:        string(pod.UID),
		labelContainerName: c.Name,
		labelNode:          a.cfg.NodeName,
	}
}

func containerAnnotations(pod *v1.Pod, c *v1.Container, restartCount int) map[string]string {
	return map[string]string{
		annotationRestartCount:             strconv.Itoa(restartCount),
		annotationContainerHash:            containerHash(c),
		annotationTerminationMessagePath:   c.TerminationMessagePath,
		annotationTerminationMessagePolicy: string(c.TerminationMessagePolicy),
		annotationGracePeriod:              strconv.FormatInt(podGracePeriod(pod), 10),
	}
}

// podGracePeriod is the grace period to stop pod's containers with: the deletion's when the
// pod is being deleted, else its spec's, else the API default.
func podGracePeriod(pod *v1.Pod) int64 {
	switch {
	case pod.DeletionGracePeriodSeconds != nil:
		return *pod.DeletionGracePeriodSeconds
	case pod.Spec.TerminationGracePeriodSeconds != nil:
		return *pod.Spec.TerminationGracePeriodSeconds
	default:
		return v1.DefaultTerminationGracePeriodSeconds
	}
}

// uidSelector selects the runtime objects of one pod that this agent created.
func (a *Agent) uidSelector(uid types.UID) map[string]string {
	return map[string]string{labelPodUID: string(uid), labelNode: a.cfg.NodeName}
}
