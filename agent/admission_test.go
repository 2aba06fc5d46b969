package agent

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
)

func TestPodThatDoesNotFitIsRejected(t *testing.T) {
	env := newTestEnv(t, nil, testPod("big", "uid-big", func(p *v1.Pod) {
		p.Spec.Containers[0].Resources.Requests = v1.ResourceList{v1.ResourceCPU: resource.MustParse("100000")}
	}))
	env.start()
	env.eventually("pod rejected", func() bool { return env.getPod("big").Status.Phase == v1.PodFailed })
	p := env.getPod("big")
	if p.Status.Reason != "OutOfcpu" || !strings.HasPrefix(p.Status.Message, "Pod was rejected: Node didn't have enough resource: cpu, requested: 100000000") {
		t.Errorf("reason %q message %q", p.Status.Reason, p.Status.Message)
	}
	if n := countCalls(env.runtime.GetCalls(), "RunPodSandbox"); n != 0 {
		t.Errorf("%d sandboxes for a rejected pod", n)
	}
}

func TestAdmissionCountsAdmittedPods(t *testing.T) {
	ad := newAdmitter()
	alloc := v1.ResourceList{v1.ResourceCPU: resource.MustParse("2"), v1.ResourcePods: resource.MustParse("2")}
	pod := func(name, cpu string) *v1.Pod {
		p := testPod(name, types.UID("uid-"+name))
		p.Spec.Containers[0].Resources.Requests = v1.ResourceList{v1.ResourceCPU: resource.MustParse(cpu)}
		return p
	}
	if _, _, ok := ad.admit(pod("a", "1500m"), false, alloc); !ok {
		t.Fatal("first pod rejected")
	}
	if reason, _, ok := ad.admit(pod("b", "1"), false, alloc); ok || reason != "OutOfcpu" {
		t.Errorf("second pod: ok=%v reason=%q, want OutOfcpu", ok, reason)
	}
	if _, _, ok := ad.admit(pod("c", "1"), true, alloc); !ok {
		t.Error("a pod already running was rejected")
	}
	if reason, _, ok := ad.admit(pod("d", "0"), false, alloc); ok || reason != "OutOfpods" {
		t.Errorf("third pod: ok=%v reason=%q, want OutOfpods", ok, reason)
	}
	ad.release("uid-a")
	if _, _, ok := ad.admit(pod("b", "1"), false, alloc); !ok {
		t.Error("rejected although a pod was released")
	}
}
