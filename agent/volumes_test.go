package agent

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func withConfigMapVolume(volume, configMap string) func(*v1.Pod) {
	return func(p *v1.Pod) {
		p.Spec.Volumes = append(p.Spec.Volumes, v1.Volume{Name: volume, VolumeSource: v1.VolumeSource{
			ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: configMap}},
		}})
		c := &p.Spec.Containers[0]
		c.VolumeMounts = append(c.VolumeMounts, v1.VolumeMount{Name: volume, MountPath: "/etc/" + volume})
	}
}

// containerMount returns the host path the agent mounts at containerPath in the pod's
// first container, as the container config of its next start would have it.
func containerMount(t *testing.T, env *testEnv, pod *v1.Pod, containerPath string) string {
	t.Helper()
	mounts, err := env.agent.containerMounts(context.Background(), pod, &pod.Spec.Containers[0], 0)
	if err != nil {
		t.Fatalf("containerMounts: %v", err)
	}
	for _, m := range mounts {
		if m.ContainerPath == containerPath {
			return m.HostPath
		}
	}
	t.Fatalf("no mount at %s in %v", containerPath, mounts)
	return ""
}

// A pod whose configMap does not exist waits in ContainerCreating with a FailedMount
// event, without a sandbox; it starts as soon as the configMap is created, follows its
// edits, and its volumes go with it.
func TestMissingConfigMapHoldsPodUntilCreated(t *testing.T) {
	env := newTestEnv(t, nil, testPod("web", "uid-1", withConfigMapVolume("cfg", "settings")))
	env.start()
	var log eventLog
	want := `Warning FailedMount MountVolume.SetUp failed for volume "cfg" : configmap "settings" not found`
	env.eventually("FailedMount event", func() bool { return slices.Contains(env.drainEvents(&log), want) })
	env.eventually("ContainerCreating status", func() bool {
		cs := env.getPod("web").Status.ContainerStatuses
		return len(cs) == 1 && cs[0].State.Waiting != nil && cs[0].State.Waiting.Reason == reasonContainerCreating
	})
	if n := countCalls(env.runtime.GetCalls(), "RunPodSandbox"); n != 0 {
		t.Errorf("%d sandboxes created before the volume was ready", n)
	}

	cms := env.client.CoreV1().ConfigMaps("default")
	cm := &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: "default"}, Data: map[string]string{"mode": "fast"}}
	if _, err := cms.Create(context.Background(), cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	env.eventually("pod running", func() bool { return runningWithIP(env.getPod("web")) })
	host := containerMount(t, env, env.getPod("web"), "/etc/cfg")
	if !strings.HasPrefix(host, env.agent.cfg.RootDir) {
		t.Fatalf("/etc/cfg mounted from %q, want a dir under the agent's root", host)
	}
	if data, err := os.ReadFile(filepath.Join(host, "mode")); err != nil || string(data) != "fast" {
		t.Errorf("mode = %q, %v", data, err)
	}

	cm.Data["mode"] = "slow"
	if _, err := cms.Update(context.Background(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	env.eventually("edited configMap in the volume", func() bool {
		data, err := os.ReadFile(filepath.Join(host, "mode"))
		return err == nil && string(data) == "slow"
	})

	markDeleted(t, env, "web", 0)
	env.eventually("pod dir removed", func() bool {
		_, err := os.Stat(filepath.Join(env.agent.cfg.RootDir, "pods", "uid-1"))
		return os.IsNotExist(err)
	})
	env.eventually("watch stopped", func() bool {
		env.agent.vols.sources.mu.Lock()
		defer env.agent.vols.sources.mu.Unlock()
		return len(env.agent.vols.sources.watched) == 0
	})
}

// A configMap deleted under a running pod keeps the files it had: the pod is not held.
func TestDeletedConfigMapKeepsRunningPod(t *testing.T) {
	cm := &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: "default"}, Data: map[string]string{"mode": "fast"}}
	env := newTestEnv(t, nil, testPod("web", "uid-1", withConfigMapVolume("cfg", "settings")), cm)
	env.start()
	env.eventually("pod running", func() bool { return runningWithIP(env.getPod("web")) })
	if err := env.client.CoreV1().ConfigMaps("default").Delete(context.Background(), "settings", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var log eventLog
	env.eventually("FailedMount event", func() bool {
		for _, ev := range env.drainEvents(&log) {
			if strings.Contains(ev, "FailedMount") {
				return true
			}
		}
		return false
	})
	if !runningWithIP(env.getPod("web")) {
		t.Errorf("pod stopped running after its configMap was deleted")
	}
	host := containerMount(t, env, env.getPod("web"), "/etc/cfg")
	if data, err := os.ReadFile(filepath.Join(host, "mode")); err != nil || string(data) != "fast" {
		t.Errorf("mode = %q, %v; want the last content kept", data, err)
	}
}

func TestPodSources(t *testing.T) {
	pod := testPod("web", types.UID("u"), withConfigMapVolume("a", "cm-a"), func(p *v1.Pod) {
		p.Spec.Volumes = append(p.Spec.Volumes,
			v1.Volume{Name: "s", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "sec"}}},
			v1.Volume{Name: "p", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
				{ConfigMap: &v1.ConfigMapProjection{LocalObjectReference: v1.LocalObjectReference{Name: "cm-b"}}},
				{Secret: &v1.SecretProjection{LocalObjectReference: v1.LocalObjectReference{Name: "sec-b"}}},
			}}}},
		)
	})
	var got []string
	for _, k := range podSources(pod) {
		got = append(got, k.String())
	}
	want := []string{"configmap default/cm-a", "secret default/sec", "configmap default/cm-b", "secret default/sec-b"}
	if !slices.Equal(got, want) {
		t.Errorf("podSources = %v, want %v", got, want)
	}
}

// Pod dirs left by pods that went while the agent was down are removed, volumes first;
// those of known pods stay.
func TestOrphanedPodDirsRemoved(t *testing.T) {
	cm := &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: "default"}, Data: map[string]string{"mode": "fast"}}
	env := newTestEnv(t, nil, testPod("web", "uid-1", withConfigMapVolume("cfg", "settings")), cm)
	orphan := filepath.Join(env.agent.cfg.RootDir, "pods", "gone-uid", "volumes", "kubernetes.io~empty-dir", "scratch")
	if err := os.MkdirAll(orphan, 0o755); err != nil {
		t.Fatal(err)
	}
	env.start()
	env.eventually("pod running", func() bool { return runningWithIP(env.getPod("web")) })
	env.eventually("orphaned pod dir removed", func() bool {
		_, err := os.Stat(filepath.Join(env.agent.cfg.RootDir, "pods", "gone-uid"))
		return os.IsNotExist(err)
	})
	env.agent.cleanupOrphanedPodDirs(context.Background())
	if _, err := os.Stat(filepath.Join(env.agent.cfg.RootDir, "pods", "uid-1", "volumes")); err != nil {
		t.Errorf("volumes of a running pod removed: %v", err)
	}
}
