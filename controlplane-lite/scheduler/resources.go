package scheduler

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Defaults kube's scoring assumes for containers that request nothing, so that such pods
// still spread instead of piling onto one node.
const (
	defaultMilliCPURequest = 100               // 0.1 core
	defaultMemoryRequest   = 200 * 1024 * 1024 // 200 MiB
)

// resources is a set of quantities in the units the scheduler compares: milli-cpu, and
// plain values for everything else.
type resources map[corev1.ResourceName]int64

func (r resources) add(o resources) {
	for name, v := range o {
		r[name] += v
	}
}

func (r resources) sub(o resources) {
	for name, v := range o {
		r[name] -= v
	}
}

func fromList(list corev1.ResourceList) resources {
	r := resources{}
	for name, q := range list {
		r[name] = quantityValue(name, q)
	}
	return r
}

func quantityValue(name corev1.ResourceName, q resource.Quantity) int64 {
	if name == corev1.ResourceCPU {
		return q.MilliValue()
	}
	return q.Value()
}

// podRequests is what a pod asks for: the sum of its containers' requests or the largest
// init container's, whichever is bigger, plus the pod overhead; pod-level resources, when
// set, take precedence. Restartable (sidecar) init containers run alongside the app
// containers and add up like them.
func podRequests(pod *corev1.Pod) resources {
	return podRequestsWith(pod, nil)
}

// podRequestsWith computes podRequests, with defaults standing in for the requests a
// container leaves out.
func podRequestsWith(pod *corev1.Pod, defaults resources) resources {
	if pod.Spec.Resources != nil && len(pod.Spec.Resources.Requests) > 0 {
		r := fromList(pod.Spec.Resources.Requests)
		for name, v := range defaults {
			if _, ok := r[name]; !ok {
				r[name] = v
			}
		}
		r.add(fromList(pod.Spec.Overhead))
		return r
	}
	containerRequests := func(c *corev1.Container) resources {
		r := fromList(c.Resources.Requests)
		for name, v := range defaults {
			if _, ok := r[name]; !ok {
				r[name] = v
			}
		}
		return r
	}
	sum := resources{}
	for i := range pod.Spec.Containers {
		sum.add(containerRequests(&pod.Spec.Containers[i]))
	}
	sidecars := resources{}
	initMax := resources{}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		req := containerRequests(c)
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecars.add(req)
			continue
		}
		// An init container runs next to the sidecars started before it.
		withSidecars := resources{}
		withSidecars.add(sidecars)
		withSidecars.add(req)
		for name, v := range withSidecars {
			initMax[name] = max(initMax[name], v)
		}
	}
	sum.add(sidecars)
	for name, v := range initMax {
		sum[name] = max(sum[name], v)
	}
	sum.add(fromList(pod.Spec.Overhead))
	return sum
}

// nonZeroRequests is the cpu and memory a pod counts for when scoring: containers that
// request no cpu or memory count for kube's defaults.
func nonZeroRequests(pod *corev1.Pod) (milliCPU, memory int64) {
	r := podRequestsWith(pod, resources{
		corev1.ResourceCPU:    defaultMilliCPURequest,
		corev1.ResourceMemory: defaultMemoryRequest,
	})
	return r[corev1.ResourceCPU], r[corev1.ResourceMemory]
}
