package registry

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// podQOSClass classifies a pod by kube's rules over CPU and memory: a container's
// resource is BestEffort with neither request nor limit, Guaranteed with both equal,
// Burstable otherwise; the pod is BestEffort or Guaranteed only when every resource of
// every container agrees, Burstable in any other case. Pod-level resources, when set,
// decide alone.
func podQOSClass(pod *corev1.Pod) corev1.PodQOSClass {
	if r := pod.Spec.Resources; r != nil && podLevelResourcesSet(r) {
		return requirementsQOS(r)
	}
	var class corev1.PodQOSClass
	for _, containers := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range containers {
			class = mergeQOS(class, requirementsQOS(&containers[i].Resources))
		}
	}
	if class == "" {
		return corev1.PodQOSBestEffort
	}
	return class
}

func podLevelResourcesSet(r *corev1.ResourceRequirements) bool {
	for _, list := range []corev1.ResourceList{r.Requests, r.Limits} {
		for name := range list {
			if isQoSResource(name) || strings.HasPrefix(string(name), corev1.ResourceHugePagesPrefix) {
				return true
			}
		}
	}
	return false
}

func requirementsQOS(r *corev1.ResourceRequirements) corev1.PodQOSClass {
	if len(r.Requests) == 0 && len(r.Limits) == 0 {
		return corev1.PodQOSBestEffort
	}
	var class corev1.PodQOSClass
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		class = mergeQOS(class, resourceQOS(r, name))
	}
	return class
}

// mergeQOS folds the class of one more container or resource into the class of those
// before it ("" for none): parts that all agree keep their class, and any mix (say one
// resource set, another not) is Burstable, which no later part can change.
func mergeQOS(class, next corev1.PodQOSClass) corev1.PodQOSClass {
	if class == "" || class == next {
		return next
	}
	return corev1.PodQOSBurstable
}

func resourceQOS(r *corev1.ResourceRequirements, name corev1.ResourceName) corev1.PodQOSClass {
	req, lim := r.Requests[name], r.Limits[name]
	switch {
	case !req.Equal(lim):
		return corev1.PodQOSBurstable
	case req.IsZero():
		return corev1.PodQOSBestEffort
	}
	return corev1.PodQOSGuaranteed
}
