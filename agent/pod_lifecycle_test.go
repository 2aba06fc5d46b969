package agent

import (
	"context"
	"os"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	clienttesting "k8s.io/client-go/testing"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func runningWithIP(p *v1.Pod) bool {
	if p.Status.Phase != v1.PodRunning || p.Status.PodIP == "" || len(p.Status.ContainerStatuses) != 1 {
		return false
	}
	return p.Status.ContainerStatuses[0].Ready
}

func TestPodBecomesRunning(t *testing.T) {
	env := newTestEnv(t, nil, testPod("web", "uid-1"))
	env.start()
	env.eventually("pod Running with IP and a ready container", func() bool { return runningWithIP(env.getPod("web")) })

	pod := env.getPod("web")
	cs := pod.Status.ContainerStatuses[0]
	if cs.State.Running == nil || cs.RestartCount != 0 || cs.Started == nil || !*cs.Started {
		t.Errorf("container status = %+v", cs)
	}
	if !strings.HasPrefix(cs.ContainerID, "fakeRuntime://") {
		t.Errorf("containerID %q lacks the runtime name prefix", cs.ContainerID)
	}
	if pod.Status.PodIP != "192.168.192.168" || pod.Status.HostIP != "10.0.0.5" || pod.Status.StartTime == nil {
		t.Errorf("podIP %q hostIP %q startTime %v", pod.Status.PodIP, pod.Status.HostIP, pod.Status.StartTime)
	}
	want := map[v1.PodConditionType]v1.ConditionStatus{
		v1.PodScheduled: v1.ConditionTrue, v1.PodReadyToStartContainers: v1.ConditionTrue,
		v1.PodInitialized: v1.ConditionTrue, v1.ContainersReady: v1.ConditionTrue, v1.PodReady: v1.ConditionTrue,
	}
	for _, c := range pod.Status.Conditions {
		if want[c.Type] != c.Status {
			t.Errorf("condition %s = %s, want %s", c.Type, c.Status, want[c.Type])
		}
		delete(want, c.Type)
	}
	if len(want) > 0 {
		t.Errorf("missing conditions %v", want)
	}
	checkSandboxConfig(t, env)
	checkPodListUsesFieldSelector(t, env)
}

// checkSandboxConfig looks at what RunPodSandbox and CreateContainer were given.
func checkSandboxConfig(t *testing.T, env *testEnv) {
	t.Helper()
	env.runtime.Lock()
	defer env.runtime.Unlock()
	if len(env.runtime.Sandboxes) != 1 {
		t.Fatalf("%d sandboxes, want 1", len(env.runtime.Sandboxes))
	}
	for _, sb := range env.runtime.Sandboxes {
		if sb.Labels[labelPodUID] != "uid-1" || sb.Labels[labelNode] != testNode || sb.Labels["app"] != "web" {
			t.Errorf("sandbox labels %v", sb.Labels)
		}
		if sb.Metadata.Name != "web" || sb.Metadata.Namespace != "default" || sb.Metadata.Uid != "uid-1" {
			t.Errorf("sandbox metadata %v", sb.Metadata)
		}
	}
	for _, c := range env.runtime.Containers {
		if c.Labels[labelContainerName] != "nginx" || c.Annotations[annotationRestartCount] != "0" {
			t.Errorf("container labels %v annotations %v", c.Labels, c.Annotations)
		}
		if c.Image.GetImage() != "nginx:latest" || c.Image.GetUserSpecifiedImage() != "nginx" {
			t.Errorf("container image spec %v", c.Image)
		}
	}
}

func checkPodListUsesFieldSelector(t *testing.T, env *testEnv) {
	t.Helper()
	want := fields.OneTermEqualSelector("spec.nodeName", testNode).String()
	found := false
	for _, act := range env.client.Actions() {
		if l, ok := act.(clienttesting.ListAction); ok && act.GetResource().Resource == "pods" {
			found = true
			if got := l.GetListRestrictions().Fields.String(); got != want {
				t.Errorf("pod list field selector %q, want %q", got, want)
			}
		}
	}
	if !found {
		t.Error("no pod list seen")
	}
}

func TestSandboxAndContainerConfig(t *testing.T) {
	env := newTestEnv(t, nil)
	pod := testPod("web", "uid-1")
	cfg, err := env.agent.sandboxConfig(pod, 0)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Hostname != "web" || !strings.HasSuffix(cfg.LogDirectory, "pod-logs/default_web_uid-1") {
		t.Errorf("hostname %q logdir %q", cfg.Hostname, cfg.LogDirectory)
	}
	if got := cfg.DnsConfig; len(got.Servers) != 1 || got.Servers[0] != "10.0.0.2" || got.Searches[0] != "example.org" || got.Options[0] != "ndots:2" {
		t.Errorf("dns config %v", got)
	}
	if len(cfg.PortMappings) != 1 || cfg.PortMappings[0].HostPort != 8080 || cfg.PortMappings[0].ContainerPort != 80 {
		t.Errorf("port mappings %v", cfg.PortMappings)
	}
	if cfg.Linux.CgroupParent != env.agent.cfg.CgroupRoot+"/besteffort/poduid-1" {
		t.Errorf("cgroup parent %q", cfg.Linux.CgroupParent)
	}
	cc, err := env.agent.containerConfig(context.Background(), pod, containerStartInput{
		container: &pod.Spec.Containers[0], restartCount: 2, imageRef: "sha256:abc", podIPs: []string{"10.244.1.7"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if cc.LogPath != "nginx/2.log" || cc.Metadata.Attempt != 2 || cc.Annotations[annotationRestartCount] != "2" {
		t.Errorf("log path %q attempt %d annotations %v", cc.LogPath, cc.Metadata.Attempt, cc.Annotations)
	}
	if len(cc.Envs) != 1 || cc.Envs[0].Key != "POD_NAME" || string(cc.Envs[0].Value) != "web" {
		t.Errorf("envs %v", cc.Envs)
	}
	var term, hosts *runtimeapi.Mount
	for _, m := range cc.Mounts {
		switch m.ContainerPath {
		case "/dev/termination-log":
			term = m
		case "/etc/hosts":
			hosts = m
		}
	}
	if hosts == nil {
		t.Fatalf("no /etc/hosts mount in %v", cc.Mounts)
	}
	if data, err := os.ReadFile(hosts.HostPath); err != nil || !strings.Contains(string(data), "10.244.1.7\tweb\n") {
		t.Errorf("hosts file %q (%v)", data, err)
	}
	if term == nil || !strings.HasSuffix(term.HostPath, "pods/uid-1/containers/nginx/2") {
		t.Errorf("termination message mount %v", cc.Mounts)
	}
}
