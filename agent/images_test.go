package agent

import (
	"context"
	"errors"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/flowcontrol"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	apitest "k8s.io/cri-api/pkg/apis/testing"
	"k8s.io/klog/v2/ktesting"
)

// slowFailingImages fails every pull after taking its time.
type slowFailingImages struct {
	*apitest.FakeImageService
	took time.Duration
}

func (s slowFailingImages) PullImage(ctx context.Context, _ *runtimeapi.ImageSpec, _ *runtimeapi.AuthConfig, _ *runtimeapi.PodSandboxConfig) (string, error) {
	time.Sleep(s.took)
	return "", errors.New("registry said no")
}

// TestImageBackOffRunsFromTheFailure: a pull that fails after longer than the back-off
// still waits out the whole back-off before the next try, instead of retrying at once
// (which turned into a sync loop reporting BackOff events a hundred times a second).
func TestImageBackOffRunsFromTheFailure(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	const backoff = 200 * time.Millisecond
	images := slowFailingImages{FakeImageService: apitest.NewFakeImageService(), took: 2 * backoff}
	p := newImagePuller(images, record.NewFakeRecorder(100), flowcontrol.NewBackOff(backoff, 10*backoff))
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "u1"},
		Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c", Image: "nginx:1"}}}}
	c := &pod.Spec.Containers[0]

	_, w, _ := p.ensureImage(ctx, pod, c, nil)
	if w == nil || w.reason != reasonErrImagePull {
		t.Fatalf("first pull: waiting %+v, want %s", w, reasonErrImagePull)
	}
	_, w, retry := p.ensureImage(ctx, pod, c, nil)
	if w == nil || w.reason != reasonImagePullBackOff {
		t.Fatalf("right after the failure: waiting %+v, want %s", w, reasonImagePullBackOff)
	}
	if retry < backoff/2 {
		t.Errorf("retry in %v, want most of the %v back-off", retry, backoff)
	}
}
