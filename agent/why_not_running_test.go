package agent

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
)

// A pod that does not run says why in its container's waiting state: one line naming the
// step that blocks it, and the event kubelet records for that step.
func TestWhyNotRunning(t *testing.T) {
	cniErr := errors.New(`plugin type="bridge" failed (add): failed to allocate for range 0: no IP addresses available in range set`)
	pullErr := errors.New(`rpc error: code = NotFound desc = failed to pull and unpack image "registry.local/app:2": not found`)
	settings := &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: "default"}, Data: map[string]string{"mode": "fast"}}
	db := &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default"}, Data: map[string][]byte{"user": []byte("app")}}
	envFrom := func(src v1.EnvVarSource) func(*v1.Pod) {
		return func(p *v1.Pod) {
			p.Spec.Containers[0].Env = append(p.Spec.Containers[0].Env, v1.EnvVar{Name: "X", ValueFrom: &src})
		}
	}
	secretVolume := func(p *v1.Pod) {
		p.Spec.Volumes = append(p.Spec.Volumes, v1.Volume{Name: "creds", VolumeSource: v1.VolumeSource{
			Secret: &v1.SecretVolumeSource{SecretName: "db-creds"},
		}})
		p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, v1.VolumeMount{Name: "creds", MountPath: "/creds"})
	}
	root := int64(0)
	yes := true

	for _, tc := range []struct {
		name    string
		objs    []runtime.Object
		mutate  func(*v1.Pod)
		setup   func(*testEnv)
		reason  string
		message string // exact
		event   string // exact, "" for none checked
	}{{
		name: "sandbox: CNI ADD fails",
		setup: func(env *testEnv) {
			for range 5 {
				env.runtime.InjectError("RunPodSandbox", cniErr)
			}
		},
		reason:  reasonContainerCreating,
		message: "failed to create pod sandbox: " + cniErr.Error(),
		event:   "Warning FailedCreatePodSandBox Failed to create pod sandbox: " + cniErr.Error(),
	}, {
		name:    "env: missing configMap key",
		objs:    []runtime.Object{settings},
		mutate:  envFrom(v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "settings"}, Key: "level"}}),
		reason:  reasonCreateConfigError,
		message: "couldn't find key level in ConfigMap default/settings",
		event:   "Warning Failed Error: couldn't find key level in ConfigMap default/settings",
	}, {
		name:    "env: missing secret key",
		objs:    []runtime.Object{db},
		mutate:  envFrom(v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "db"}, Key: "password"}}),
		reason:  reasonCreateConfigError,
		message: "couldn't find key password in Secret default/db",
	}, {
		name:    "env: missing configMap",
		mutate:  envFrom(v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "nope"}, Key: "k"}}),
		reason:  reasonCreateConfigError,
		message: `configmap "nope" not found`,
	}, {
		name: "envFrom: missing secret",
		mutate: func(p *v1.Pod) {
			p.Spec.Containers[0].EnvFrom = []v1.EnvFromSource{{SecretRef: &v1.SecretEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "nope"}}}}
		},
		reason:  reasonCreateConfigError,
		message: `secret "nope" not found`,
	}, {
		name:    "volume: missing configMap",
		mutate:  withConfigMapVolume("cfg", "absent"),
		reason:  reasonContainerCreating,
		message: `MountVolume.SetUp failed for volume "cfg" : configmap "absent" not found`,
		event:   `Warning FailedMount MountVolume.SetUp failed for volume "cfg" : configmap "absent" not found`,
	}, {
		name:    "volume: missing secret",
		mutate:  secretVolume,
		reason:  reasonContainerCreating,
		message: `MountVolume.SetUp failed for volume "creds" : secret "db-creds" not found`,
	}, {
		name:   "image: pull fails",
		mutate: func(p *v1.Pod) { p.Spec.Containers[0].Image = "registry.local/app:2" },
		setup: func(env *testEnv) {
			for range 20 {
				env.images.InjectError("PullImage", pullErr)
			}
		},
		reason:  reasonErrImagePull,
		message: `Failed to pull image "registry.local/app:2": ` + pullErr.Error(),
		event:   `Warning Failed Failed to pull image "registry.local/app:2": ` + pullErr.Error(),
	}, {
		name:   "image: back-off keeps the registry's answer",
		mutate: func(p *v1.Pod) { p.Spec.Containers[0].Image = "registry.local/app:2" },
		setup: func(env *testEnv) {
			for range 20 {
				env.images.InjectError("PullImage", pullErr)
			}
		},
		reason:  reasonImagePullBackOff,
		message: `Back-off pulling image "registry.local/app:2": ErrImagePull: ` + pullErr.Error(),
		event:   `Normal BackOff Back-off pulling image "registry.local/app:2"`,
	}, {
		name: "runAsNonRoot with runAsUser 0",
		mutate: func(p *v1.Pod) {
			p.Spec.Containers[0].SecurityContext = &v1.SecurityContext{RunAsNonRoot: &yes, RunAsUser: &root}
		},
		reason:  reasonCreateConfigError,
		message: `container's runAsUser breaks non-root policy (pod: "web_default(uid-1)", container: nginx)`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			pod := testPod("web", "uid-1")
			if tc.mutate != nil {
				tc.mutate(pod)
			}
			env := newTestEnv(t, nil, append([]runtime.Object{pod}, tc.objs...)...)
			if tc.setup != nil {
				tc.setup(env)
			}
			env.start()
			var last *v1.ContainerStateWaiting
			err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 10*time.Second, true,
				func(context.Context) (bool, error) {
					last = containerStatusOf(env.getPod("web")).State.Waiting
					return last != nil && last.Reason == tc.reason && last.Message == tc.message, nil
				})
			if err != nil {
				t.Fatalf("waiting state %+v, want %s %q", last, tc.reason, tc.message)
			}
			if strings.Contains(last.Message, "\n") {
				t.Errorf("message spans lines: %q", last.Message)
			}
			if p := env.getPod("web"); p.Status.Phase != v1.PodPending {
				t.Errorf("phase %s, want Pending", p.Status.Phase)
			}
			if tc.event != "" {
				var log eventLog
				env.eventually("event "+tc.event, func() bool { return slices.Contains(env.drainEvents(&log), tc.event) })
			}
		})
	}
}
