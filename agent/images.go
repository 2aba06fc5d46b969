package agent

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/flowcontrol"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// Waiting reasons and event reasons of the kubelet, which kubectl users know.
const (
	reasonContainerCreating    = "ContainerCreating"
	reasonPodInitializing      = "PodInitializing"
	reasonErrImagePull         = "ErrImagePull"
	reasonImagePullBackOff     = "ImagePullBackOff"
	reasonErrImageNeverPull    = "ErrImageNeverPull"
	reasonCrashLoopBackOff     = "CrashLoopBackOff"
	reasonCreateConfigError    = "CreateContainerConfigError"
	reasonCreateContainerError = "CreateContainerError"
	reasonRunContainerError    = "RunContainerError"

	eventPulling               = "Pulling"
	eventPulled                = "Pulled"
	eventCreated               = "Created"
	eventStarted               = "Started"
	eventKilling               = "Killing"
	eventBackOff               = "BackOff"
	eventFailed                = "Failed"
	eventFailedCreateSandbox   = "FailedCreatePodSandBox"
	eventFailedMount           = "FailedMount"
	eventSandboxChanged        = "SandboxChanged"
	eventFailedKillPod         = "FailedKillPod"
	eventErrImageNeverPullType = reasonErrImageNeverPull
)

// waiting is why a container is not running, as shown in its status.
type waiting struct {
	reason, message string
}

// imagePuller makes sure a container's image is present, honouring imagePullPolicy and
// backing off per pod and image after failures (kubelet's image manager).
type imagePuller struct {
	images   internalapi.ImageManagerService
	recorder record.EventRecorder
	backoff  *flowcontrol.Backoff
	// watch follows pulls in flight (pull_progress.go).
	watch pullWatch

	mu sync.Mutex
	// failedAt is when the last pull of a pod's image failed, to tell how much of the
	// back-off is left; lastErr is what that pull failed with.
	failedAt map[string]time.Time
	lastErr  map[string]string
}

func (p *imagePuller) failed(key string, at time.Time, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.backoff.Next(key, at)
	p.failedAt[key] = at
	p.lastErr[key] = err.Error()
}

func (p *imagePuller) succeeded(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.backoff.Reset(key)
	delete(p.failedAt, key)
	delete(p.lastErr, key)
}

// lastError is the error of the last failed pull of key, "" if none.
func (p *imagePuller) lastError(key string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastErr[key]
}

// forgetPod drops the pull back-off state of a pod that is gone.
func (p *imagePuller) forgetPod(uid types.UID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	prefix := string(uid) + "/"
	for key := range p.failedAt {
		if strings.HasPrefix(key, prefix) {
			p.backoff.DeleteEntry(key)
			delete(p.failedAt, key)
			delete(p.lastErr, key)
		}
	}
}

func (p *imagePuller) remaining(key string, now time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return max(p.backoff.Get(key)-now.Sub(p.failedAt[key]), 10*time.Millisecond)
}

func newImagePuller(images internalapi.ImageManagerService, rec record.EventRecorder, b *flowcontrol.Backoff) *imagePuller {
	return &imagePuller{images: images, recorder: rec, backoff: b, failedAt: map[string]time.Time{}, lastErr: map[string]string{}}
}

// ensureImage returns the image reference to create the container with, or why it can't
// (with the time to retry after).
func (p *imagePuller) ensureImage(ctx context.Context, pod *v1.Pod, c *v1.Container, sandbox *runtimeapi.PodSandboxConfig) (string, *waiting, time.Duration) {
	ref := containerRef(pod, c.Name)
	image := applyDefaultTag(c.Image)
	spec := &runtimeapi.ImageSpec{Image: image, UserSpecifiedImage: c.Image}

	present, err := p.images.ImageStatus(ctx, spec, false)
	if err != nil {
		msg := fmt.Sprintf("Failed to inspect image %q: %v", c.Image, err)
		p.recorder.Event(ref, v1.EventTypeWarning, eventFailed, msg)
		return "", &waiting{reasonErrImagePull, msg}, syncErrorRetry
	}
	if id := present.GetImage().GetId(); id != "" && pullPolicy(c) != v1.PullAlways {
		p.recorder.Eventf(ref, v1.EventTypeNormal, eventPulled, "Container image %q already present on machine", c.Image)
		return id, nil, 0
	}
	if pullPolicy(c) == v1.PullNever {
		msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", c.Image)
		p.recorder.Event(ref, v1.EventTypeWarning, eventErrImageNeverPullType, msg)
		return "", &waiting{reasonErrImageNeverPull, msg}, syncErrorRetry
	}
	return p.pull(ctx, pod, c, spec, sandbox)
}

func (p *imagePuller) pull(ctx context.Context, pod *v1.Pod, c *v1.Container, spec *runtimeapi.ImageSpec, sandbox *runtimeapi.PodSandboxConfig) (string, *waiting, time.Duration) {
	ref := containerRef(pod, c.Name)
	key := string(pod.UID) + "/" + spec.Image
	now := time.Now()
	if p.backoff.IsInBackOffSinceUpdate(key, now) {
		msg := fmt.Sprintf("Back-off pulling image %q", c.Image)
		p.recorder.Event(ref, v1.EventTypeNormal, eventBackOff, msg)
		// The status keeps saying what the registry answered, as kubelet's does since 1.33.
		if last := p.lastError(key); last != "" {
			msg = fmt.Sprintf("%s: %s: %s", msg, reasonErrImagePull, last)
		}
		return "", &waiting{reasonImagePullBackOff, msg}, p.remaining(key, now)
	}
	p.recorder.Eventf(ref, v1.EventTypeNormal, eventPulling, "Pulling image %q", c.Image)
	start := time.Now()
	id, err := p.pullImage(ctx, pod, c, spec, sandbox)
	if err != nil {
		// The back-off runs from the failure: a pull that failed slowly (a slow-pull
		// cancel takes SlowTimeout) must not find its back-off already spent.
		p.failed(key, time.Now(), err)
		klog.FromContext(ctx).Info("Image pull failed", "image", c.Image, "err", err)
		msg := fmt.Sprintf("Failed to pull image %q: %v", c.Image, err)
		p.recorder.Event(ref, v1.EventTypeWarning, eventFailed, msg)
		p.recorder.Eventf(ref, v1.EventTypeWarning, eventFailed, "Error: %s", reasonErrImagePull)
		// Come back halfway through the back-off, so the status moves on from
		// ErrImagePull to ImagePullBackOff as with kubelet, and again when it ends.
		return "", &waiting{reasonErrImagePull, msg}, p.backoff.Get(key) / 2
	}
	p.succeeded(key)
	took := time.Since(start).Round(time.Millisecond)
	size := ""
	if st, err := p.images.ImageStatus(ctx, spec, false); err == nil && st.GetImage() != nil {
		size = fmt.Sprintf(" Image size: %d bytes.", st.GetImage().Size)
	}
	p.recorder.Eventf(ref, v1.EventTypeNormal, eventPulled, "Successfully pulled image %q in %v (%v including waiting).%s", c.Image, took, took, size)
	return id, nil, 0
}

// pullPolicy is the container's policy, defaulted like the apiserver does when unset.
func pullPolicy(c *v1.Container) v1.PullPolicy {
	if c.ImagePullPolicy != "" {
		return c.ImagePullPolicy
	}
	if strings.HasSuffix(applyDefaultTag(c.Image), ":latest") {
		return v1.PullAlways
	}
	return v1.PullIfNotPresent
}

// applyDefaultTag adds ":latest" to an image without tag or digest, like kubelet.
func applyDefaultTag(image string) string {
	if strings.Contains(image, "@") {
		return image
	}
	last := image[strings.LastIndex(image, "/")+1:]
	if strings.Contains(last, ":") {
		return image
	}
	return image + ":latest"
}
