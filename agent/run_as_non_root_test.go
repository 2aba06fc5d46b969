package agent

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestVerifyImageUser(t *testing.T) {
	pod := testPod("web", "uid-1")
	c := &pod.Spec.Containers[0]
	for _, tc := range []struct {
		name string
		img  *runtimeapi.Image
		want string
	}{
		{"uid 0", &runtimeapi.Image{Uid: &runtimeapi.Int64Value{Value: 0}}, "image will run as root"},
		{"no user", &runtimeapi.Image{}, "image will run as root"},
		{"named user", &runtimeapi.Image{Username: "www-data"}, "image has non-numeric user (www-data)"},
		{"uid 101", &runtimeapi.Image{Uid: &runtimeapi.Int64Value{Value: 101}}, ""},
	} {
		err := verifyImageUser(pod, c, tc.img)
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestRunAsNonRootWithRootUserIsConfigError(t *testing.T) {
	yes, root, other := true, int64(0), int64(1000)
	env := newTestEnv(t, nil, testPod("web", "uid-1", func(p *v1.Pod) {
		p.Spec.SecurityContext = &v1.PodSecurityContext{RunAsNonRoot: &yes, RunAsUser: &other}
		p.Spec.Containers[0].SecurityContext = &v1.SecurityContext{RunAsUser: &root}
	}))
	env.start()
	env.eventually("CreateContainerConfigError", func() bool {
		w := containerStatusOf(env.getPod("web")).State.Waiting
		return w != nil && w.Reason == reasonCreateConfigError &&
			w.Message == `container's runAsUser breaks non-root policy (pod: "web_default(uid-1)", container: nginx)`
	})
	if n := countCalls(env.runtime.GetCalls(), "CreateContainer"); n != 0 {
		t.Errorf("%d containers created", n)
	}
}
