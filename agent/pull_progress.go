package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// Defaults of ImagePullConfig.
const (
	DefaultImagePullMinBytesPerSecond = 1024
	DefaultImagePullSlowTimeout       = time.Minute
)

// ImagePullConfig bounds how slow an image pull may be. A pull whose throughput stays
// under MinBytesPerSecond for SlowTimeout is cancelled, reported as ErrImagePull and
// retried with the image pull back-off. The throughput is what the runtime reports in
// info["pullProgress"] of a verbose ImageStatus (skiff's CRI server does); with a runtime
// that reports none, pulls are neither shown nor judged.
type ImagePullConfig struct {
	// MinBytesPerSecond is the throughput floor. Default 1024.
	MinBytesPerSecond int64
	// SlowTimeout is how long a pull may stay under the floor. It is judged only once the
	// image's size is known. Default 60s; a negative value disables the check.
	SlowTimeout time.Duration
}

// validate checks the values and fills in the defaults.
func (c *ImagePullConfig) validate() error {
	if c.MinBytesPerSecond < 0 {
		return fmt.Errorf("ImagePull.MinBytesPerSecond %d must not be negative", c.MinBytesPerSecond)
	}
	if c.MinBytesPerSecond == 0 {
		c.MinBytesPerSecond = DefaultImagePullMinBytesPerSecond
	}
	if c.SlowTimeout == 0 {
		c.SlowTimeout = DefaultImagePullSlowTimeout
	}
	return nil
}

// How a pull is followed: the runtime is asked every pullPollPeriod, the pod's status
// shows the progress at most every pullReportPeriod, and the rate shown is over the last
// pullRateWindow.
const (
	pullPollPeriod   = time.Second
	pullReportPeriod = 2 * time.Second
	pullRateWindow   = 5 * time.Second
)

// pullProgressKey is the verbose ImageStatus info key of a pull in flight.
const pullProgressKey = "pullProgress"

// pullWatch follows pulls in flight: it shows their progress on the waiting container
// and cancels those that stay too slow.
type pullWatch struct {
	cfg                       ImagePullConfig
	poll, reportEvery, window time.Duration
	// report shows message as the waiting message of the pod's container.
	report func(ctx context.Context, pod *v1.Pod, container, message string)
}

func newPullWatch(cfg ImagePullConfig, report func(ctx context.Context, pod *v1.Pod, container, message string)) pullWatch {
	return pullWatch{cfg: cfg, poll: pullPollPeriod, reportEvery: pullReportPeriod, window: pullRateWindow, report: report}
}

// slowPullError is why a pull was cancelled for being too slow.
type slowPullError struct {
	floor       int64
	window      time.Duration
	done, total int64
}

func (e *slowPullError) Error() string {
	return fmt.Sprintf("pull cancelled: under %s for %v (at %s)", formatRate(float64(e.floor)), e.window, formatPulled(e.done, e.total))
}

// pullImage runs PullImage while following it; a pull too slow for too long is cancelled
// and fails with a slowPullError.
func (p *imagePuller) pullImage(ctx context.Context, pod *v1.Pod, c *v1.Container, spec *runtimeapi.ImageSpec, sandbox *runtimeapi.PodSandboxConfig) (string, error) {
	if p.watch.poll <= 0 {
		return p.images.PullImage(ctx, spec, nil, sandbox)
	}
	pullCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	followCtx, stopFollowing := context.WithCancel(pullCtx)
	var wg sync.WaitGroup
	wg.Go(func() { p.watch.follow(followCtx, p.images, pod, c, spec, cancel) })
	id, err := p.images.PullImage(pullCtx, spec, nil, sandbox)
	// The follower may be writing status; it must be done before the sync goes on.
	stopFollowing()
	wg.Wait()
	var slow *slowPullError
	if err != nil && errors.As(context.Cause(pullCtx), &slow) {
		return "", slow
	}
	return id, err
}

// follow polls the runtime for the pull's progress until ctx ends.
func (w *pullWatch) follow(ctx context.Context, images internalapi.ImageManagerService, pod *v1.Pod, c *v1.Container,
	spec *runtimeapi.ImageSpec, cancel context.CancelCauseFunc) {
	logger := klog.FromContext(ctx)
	ticker := time.NewTicker(w.poll)
	defer ticker.Stop()
	trace := pullTrace{keep: max(w.window, w.cfg.SlowTimeout)}
	var lastReport time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		resp, err := images.ImageStatus(ctx, spec, true)
		if err != nil {
			logger.V(4).Info("Reading image pull progress", "image", spec.Image, "err", err)
			continue
		}
		progress, ok := parsePullProgress(resp.GetInfo()[pullProgressKey])
		if !ok {
			continue // a runtime that does not report progress
		}
		now := time.Now()
		trace.add(now, progress)
		if slow := trace.slow(now, w.cfg); slow != nil {
			logger.Info("Cancelling slow image pull", "pod", klog.KObj(pod), "image", c.Image, "reason", slow.Error())
			cancel(slow)
			return
		}
		if w.report != nil && now.Sub(lastReport) >= w.reportEvery {
			w.report(ctx, pod, c.Name, trace.message(c.Image, now, w.window))
			lastReport = now
		}
	}
}

// pullProgress is info["pullProgress"] of a verbose ImageStatus.
type pullProgress struct {
	Ref        string    `json:"ref"`
	BytesDone  int64     `json:"bytesDone"`
	BytesTotal int64     `json:"bytesTotal"`
	StartedAt  time.Time `json:"startedAt"`
}

func parsePullProgress(raw string) (pullProgress, bool) {
	var p pullProgress
	if raw == "" || json.Unmarshal([]byte(raw), &p) != nil {
		return pullProgress{}, false
	}
	return p, true
}

// pullSample is how many bytes a pull had at a time.
type pullSample struct {
	at   time.Time
	done int64
}

// pullTrace keeps the samples of one pull that rates over the last keep need.
type pullTrace struct {
	keep    time.Duration
	samples []pullSample // oldest first
	last    pullProgress
}

func (t *pullTrace) add(now time.Time, p pullProgress) {
	if p.BytesDone < t.last.BytesDone {
		t.samples = nil // the runtime started the pull over
	}
	t.samples = append(t.samples, pullSample{at: now, done: p.BytesDone})
	t.last = p
	// The oldest sample stays while it is the base of a rate over keep.
	for len(t.samples) > 2 && now.Sub(t.samples[1].at) >= t.keep {
		t.samples = t.samples[1:]
	}
}

// rate is the throughput over the last window, measured from the newest sample at least
// window old (or the oldest one); over is the time it was measured over.
func (t *pullTrace) rate(now time.Time, window time.Duration) (bps float64, over time.Duration, ok bool) {
	if len(t.samples) == 0 {
		return 0, 0, false
	}
	base := t.samples[0]
	for _, s := range t.samples[1:] {
		if now.Sub(s.at) < window {
			break
		}
		base = s
	}
	over = now.Sub(base.at)
	if over <= 0 {
		return 0, 0, false
	}
	return float64(t.last.BytesDone-base.done) / over.Seconds(), over, true
}

// slow tells whether the pull has stayed under the floor for SlowTimeout. A pull of
// unknown size or with every byte in (unpacking) is not judged.
func (t *pullTrace) slow(now time.Time, cfg ImagePullConfig) *slowPullError {
	p := t.last
	if cfg.SlowTimeout <= 0 || p.BytesTotal <= 0 || p.BytesDone >= p.BytesTotal {
		return nil
	}
	bps, over, ok := t.rate(now, cfg.SlowTimeout)
	if !ok || over < cfg.SlowTimeout || bps >= float64(cfg.MinBytesPerSecond) {
		return nil
	}
	return &slowPullError{floor: cfg.MinBytesPerSecond, window: cfg.SlowTimeout, done: p.BytesDone, total: p.BytesTotal}
}

// message is the waiting message of a container whose image is being pulled, e.g.
// "Pulling nginx: 12.3/40.1 MB, 3.2 MB/s".
func (t *pullTrace) message(image string, now time.Time, window time.Duration) string {
	msg := fmt.Sprintf("Pulling %s: %s", image, formatPulled(t.last.BytesDone, t.last.BytesTotal))
	if bps, _, ok := t.rate(now, window); ok {
		msg += ", " + formatRate(bps)
	}
	return msg
}

// formatPulled shows bytes in MB (10^6 bytes), as done/total once the total is known.
func formatPulled(done, total int64) string {
	if total <= 0 {
		return fmt.Sprintf("%.1f MB", float64(done)/1e6)
	}
	return fmt.Sprintf("%.1f/%.1f MB", float64(done)/1e6, float64(total)/1e6)
}

func formatRate(bps float64) string {
	switch {
	case bps >= 1e6:
		return fmt.Sprintf("%.1f MB/s", bps/1e6)
	case bps >= 1e3:
		return fmt.Sprintf("%.1f kB/s", bps/1e3)
	}
	return fmt.Sprintf("%.0f B/s", max(bps, 0))
}

// reportPullProgress writes the pod's status with message on the container whose image
// is being pulled; the pod worker is blocked in the pull meanwhile.
func (a *Agent) reportPullProgress(ctx context.Context, pod *v1.Pod, container, message string) {
	reasons := maps.Clone(a.reasons.get(pod.UID))
	if reasons == nil {
		reasons = map[string]waiting{}
	}
	reason := reasonContainerCreating
	if isInitContainer(pod, container) {
		reason = reasonPodInitializing // what an init container shows while it waits
	}
	reasons[container] = waiting{reason: reason, message: message}
	rp, err := a.getRuntimePod(ctx, pod.UID)
	if err != nil {
		klog.FromContext(ctx).V(4).Info("Skipping pull progress report", "pod", klog.KObj(pod), "err", err)
		return
	}
	_, _ = a.reportStatus(ctx, pod, rp, reasons)
}
