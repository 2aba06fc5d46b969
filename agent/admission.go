package agent

import (
	"fmt"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
)

// admitter is kubelet's resource admission: a pod is started only if its requests fit
// in what the node has left, so a pod bound by mistake (or by a racing scheduler) fails
// with OutOfcpu/OutOfmemory/OutOfpods instead of overcommitting the node.
type admitter struct {
	mu       sync.Mutex
	admitted map[types.UID]v1.ResourceList
}

func newAdmitter() *admitter {
	return &admitter{admitted: map[types.UID]v1.ResourceList{}}
}

// admit decides once per pod. A pod the runtime already runs (adopted after a restart)
// is admitted without a check: it is there already.
func (ad *admitter) admit(pod *v1.Pod, running bool, allocatable v1.ResourceList) (reason, message string, ok bool) {
	ad.mu.Lock()
	defer ad.mu.Unlock()
	if _, done := ad.admitted[pod.UID]; done {
		return "", "", true
	}
	req := podRequests(pod)
	if !running {
		if reason, message, ok := ad.fits(req, allocatable); !ok {
			return reason, message, false
		}
	}
	ad.admitted[pod.UID] = req
	return "", "", true
}

func (ad *admitter) fits(req, allocatable v1.ResourceList) (string, string, bool) {
	if pods := allocatable[v1.ResourcePods]; int64(len(ad.admitted)+1) > pods.Value() {
		return "OutOfpods", fmt.Sprintf("Node didn't have enough resource: pods, requested: 1, used: %d, capacity: %d",
			len(ad.admitted), pods.Value()), false
	}
	for _, name := range []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory, v1.ResourceEphemeralStorage} {
		want, ok := req[name]
		if !ok || want.IsZero() {
			continue
		}
		used := resource.Quantity{}
		for _, r := range ad.admitted {
			if q, ok := r[name]; ok {
				used.Add(q)
			}
		}
		capacity := allocatable[name]
		total := used.DeepCopy()
		total.Add(want)
		if total.Cmp(capacity) > 0 {
			return "OutOf" + string(name), fmt.Sprintf("Node didn't have enough resource: %s, requested: %d, used: %d, capacity: %d",
				name, quantityValue(name, want), quantityValue(name, used), quantityValue(name, capacity)), false
		}
	}
	return "", "", true
}

// release forgets a pod that no longer runs.
func (ad *admitter) release(uid types.UID) {
	ad.mu.Lock()
	defer ad.mu.Unlock()
	delete(ad.admitted, uid)
}

// podRequests is what the scheduler counts: the larger of the app containers' sum and
// the biggest init container, plus the pod overhead.
func podRequests(pod *v1.Pod) v1.ResourceList {
	out := v1.ResourceList{}
	for _, c := range pod.Spec.Containers {
		for name, q := range c.Resources.Requests {
			sum := out[name]
			sum.Add(q)
			out[name] = sum
		}
	}
	for _, c := range pod.Spec.InitContainers {
		for name, q := range c.Resources.Requests {
			if cur, ok := out[name]; !ok || q.Cmp(cur) > 0 {
				out[name] = q.DeepCopy()
			}
		}
	}
	for name, q := range pod.Spec.Overhead {
		sum := out[name]
		sum.Add(q)
		out[name] = sum
	}
	return out
}

// quantityValue prints CPU in millicores, like kubelet's message.
func quantityValue(name v1.ResourceName, q resource.Quantity) int64 {
	if name == v1.ResourceCPU {
		return q.MilliValue()
	}
	return q.Value()
}
