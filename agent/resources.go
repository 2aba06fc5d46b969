package agent

import (
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The kubelet's CPU and OOM-score arithmetic (pkg/kubelet/cm and pkg/kubelet/qos).
const (
	minCPUShares         = 2
	sharesPerCPU         = 1024
	cpuPeriodMicros      = 100000
	minCPUQuotaMicros    = 1000
	guaranteedOOMScore   = -997
	bestEffortOOMScore   = 1000
	burstableMinOOMScore = 2
	burstableMaxOOMScore = 999
)

// podQOSClass is the pod's QoS class: the apiserver usually filled it in already.
func podQOSClass(pod *v1.Pod) v1.PodQOSClass {
	if pod.Status.QOSClass != "" {
		return pod.Status.QOSClass
	}
	return computeQOSClass(pod)
}

// computeQOSClass: BestEffort without any request or limit, Guaranteed when every
// container's cpu and memory limits equal its requests, Burstable otherwise.
func computeQOSClass(pod *v1.Pod) v1.PodQOSClass {
	any, guaranteed := false, true
	for _, c := range pod.Spec.Containers {
		if len(c.Resources.Requests) > 0 || len(c.Resources.Limits) > 0 {
			any = true
		}
		for _, r := range []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory} {
			lim, hasLim := c.Resources.Limits[r]
			req, hasReq := c.Resources.Requests[r]
			if !hasLim || (hasReq && req.Cmp(lim) != 0) {
				guaranteed = false
			}
		}
	}
	switch {
	case !any:
		return v1.PodQOSBestEffort
	case guaranteed:
		return v1.PodQOSGuaranteed
	default:
		return v1.PodQOSBurstable
	}
}

// linuxResources turns a container's requests and limits into cgroup settings.
func (a *Agent) linuxResources(pod *v1.Pod, c *v1.Container) *runtimeapi.LinuxContainerResources {
	r := &runtimeapi.LinuxContainerResources{CpuShares: minCPUShares}
	cpuReq, hasReq := c.Resources.Requests[v1.ResourceCPU]
	if !hasReq {
		cpuReq, hasReq = c.Resources.Limits[v1.ResourceCPU]
	}
	if hasReq {
		r.CpuShares = max(cpuReq.MilliValue()*sharesPerCPU/1000, minCPUShares)
	}
	if lim, ok := c.Resources.Limits[v1.ResourceCPU]; ok {
		r.CpuPeriod = cpuPeriodMicros
		r.CpuQuota = max(lim.MilliValue()*cpuPeriodMicros/1000, minCPUQuotaMicros)
	}
	if lim, ok := c.Resources.Limits[v1.ResourceMemory]; ok {
		r.MemoryLimitInBytes = lim.Value()
	}
	r.OomScoreAdj = a.oomScoreAdj(pod, c)
	return r
}

// oomScoreAdj follows kubelet's policy. A negative value may be refused by a host whose
// root lacks CAP_SYS_RESOURCE; clamping is the runtime's business, as with containerd.
func (a *Agent) oomScoreAdj(pod *v1.Pod, c *v1.Container) int64 {
	switch podQOSClass(pod) {
	case v1.PodQOSGuaranteed:
		return guaranteedOOMScore
	case v1.PodQOSBestEffort:
		return bestEffortOOMScore
	}
	memReq := c.Resources.Requests[v1.ResourceMemory]
	if a.machine.memoryBytes <= 0 {
		return burstableMaxOOMScore
	}
	score := 1000 - (1000*memReq.Value())/a.machine.memoryBytes
	return min(max(score, burstableMinOOMScore), burstableMaxOOMScore)
}

// resourceFieldValue resolves a resourceFieldRef env var: the container's limit (or the
// node's allocatable when unset) or request, divided by the divisor, rounded up.
func (a *Agent) resourceFieldValue(c *v1.Container, ref *v1.ResourceFieldSelector) (string, bool) {
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	var q resource.Quantity
	switch ref.Resource {
	case "limits.cpu", "limits.memory":
		name := v1.ResourceName(ref.Resource[len("limits."):])
		v, ok := c.Resources.Limits[name]
		if !ok {
			v = a.machine.capacity(0)[name]
		}
		q = v
	case "requests.cpu", "requests.memory":
		q = c.Resources.Requests[v1.ResourceName(ref.Resource[len("requests."):])]
	default:
		return "", false
	}
	if ref.Resource == "limits.cpu" || ref.Resource == "requests.cpu" {
		return itoaCeil(q.MilliValue(), divisor.MilliValue()), true
	}
	return itoaCeil(q.Value(), divisor.Value()), true
}

func itoaCeil(v, d int64) string {
	if d == 0 {
		d = 1
	}
	return resource.NewQuantity((v+d-1)/d, resource.DecimalSI).String()
}
