package agent

import (
	"context"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"
)

// progressImages is an image service whose pulls block until released (or their context
// ends) and report their progress through verbose ImageStatus, as skiff's CRI server does.
type progressImages struct {
	*critest.FakeImageService
	report bool // whether ImageStatus carries pullProgress
	total  int64
	// bytesAt is how far a pull is after running for d.
	bytesAt func(d time.Duration) int64

	mu        sync.Mutex
	started   time.Time
	pulling   bool
	pulls     int
	cancelled int
	release   chan struct{}
}

func newProgressImages(report bool, total int64, bytesAt func(time.Duration) int64) *progressImages {
	return &progressImages{FakeImageService: critest.NewFakeImageService(), report: report, total: total,
		bytesAt: bytesAt, release: make(chan struct{})}
}

func (f *progressImages) PullImage(ctx context.Context, image *runtimeapi.ImageSpec, auth *runtimeapi.AuthConfig, sb *runtimeapi.PodSandboxConfig) (string, error) {
	f.mu.Lock()
	f.started, f.pulling = time.Now(), true
	f.pulls++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.pulling = false
		f.mu.Unlock()
	}()
	select {
	case <-f.release:
		return f.FakeImageService.PullImage(ctx, image, auth, sb)
	case <-ctx.Done():
		f.mu.Lock()
		f.cancelled++
		f.mu.Unlock()
		return "", ctx.Err()
	}
}

func (f *progressImages) ImageStatus(ctx context.Context, image *runtimeapi.ImageSpec, verbose bool) (*runtimeapi.ImageStatusResponse, error) {
	resp, err := f.FakeImageService.ImageStatus(ctx, image, verbose)
	if err != nil || !verbose || !f.report {
		return resp, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pulling {
		raw, _ := json.Marshal(pullProgress{Ref: image.Image, BytesDone: f.bytesAt(time.Since(f.started)),
			BytesTotal: f.total, StartedAt: f.started})
		resp.Info = map[string]string{pullProgressKey: string(raw)}
	}
	return resp, nil
}

func (f *progressImages) counts() (pulls, cancelled int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pulls, f.cancelled
}

// useImages puts images behind the agent's puller, following pulls at test speed.
func (e *testEnv) useImages(images *progressImages, cfg ImagePullConfig) {
	if err := cfg.validate(); err != nil {
		e.t.Fatal(err)
	}
	p := e.agent.puller
	p.images = images
	p.watch = pullWatch{cfg: cfg, poll: 50 * time.Millisecond, reportEvery: 100 * time.Millisecond,
		window: 500 * time.Millisecond, report: e.agent.reportPullProgress}
}

func waitingOf(p *v1.Pod) *v1.ContainerStateWaiting {
	return containerStatusOf(p).State.Waiting
}

func TestPullProgressShownWhilePulling(t *testing.T) {
	env := newTestEnv(t, nil, testPod("web", "uid-pp1"))
	const rate = 3_200_000
	images := newProgressImages(true, 40_100_000, func(d time.Duration) int64 { return int64(d.Seconds() * rate) })
	env.useImages(images, ImagePullConfig{SlowTimeout: 200 * time.Millisecond})
	env.start()

	shape := regexp.MustCompile(`^Pulling nginx: [0-9]+\.[0-9]/40\.1 MB, ([0-9]+\.[0-9]) MB/s$`)
	var msg string
	env.eventually("a pull progress message", func() bool {
		w := waitingOf(env.getPod("web"))
		if w == nil {
			return false
		}
		msg = w.Message
		m := shape.FindStringSubmatch(msg)
		if m == nil || w.Reason != reasonContainerCreating {
			return false
		}
		shown, _ := strconv.ParseFloat(m[1], 64)
		return shown >= 2.8 && shown <= 3.6
	})
	// Fast enough: the short SlowTimeout has long passed and the pull goes on.
	time.Sleep(300 * time.Millisecond)
	if _, cancelled := images.counts(); cancelled != 0 {
		t.Fatalf("a pull at %d B/s was cancelled", rate)
	}

	close(images.release)
	env.eventually("the container running after the pull", func() bool {
		return containerStatusOf(env.getPod("web")).State.Running != nil
	})
	t.Logf("last progress message: %q", msg)
}

func TestSlowPullCancelledAndBackedOff(t *testing.T) {
	env := newTestEnv(t, nil, testPod("web", "uid-pp2"))
	images := newProgressImages(true, 40_100_000, func(time.Duration) int64 { return 300_000 })
	env.useImages(images, ImagePullConfig{MinBytesPerSecond: 1024, SlowTimeout: 400 * time.Millisecond})
	env.start()

	const want = `Failed to pull image "nginx": pull cancelled: under 1.0 kB/s for 400ms (at 0.3/40.1 MB)`
	var log eventLog
	env.eventually("the Failed event of the cancelled pull", func() bool {
		for _, e := range env.drainEvents(&log) {
			if e == "Warning Failed "+want {
				return true
			}
		}
		return false
	})
	env.eventually("ErrImagePull then ImagePullBackOff", func() bool {
		w := waitingOf(env.getPod("web"))
		return w != nil && w.Reason == reasonImagePullBackOff && strings.Contains(w.Message, "pull cancelled: under 1.0 kB/s")
	})
	if pulls, cancelled := images.counts(); pulls == 0 || cancelled == 0 {
		t.Errorf("pulls %d, cancelled %d", pulls, cancelled)
	}
	events := strings.Join(env.drainEvents(&log), "\n")
	for _, e := range []string{"Warning Failed Error: ErrImagePull", "Normal BackOff Back-off pulling image \"nginx\""} {
		if !strings.Contains(events, e) {
			t.Errorf("no event %q in:\n%s", e, events)
		}
	}
	// The back-off ends in another pull, which is followed the same way.
	env.eventually("a retried pull cancelled again", func() bool { _, c := images.counts(); return c >= 2 })
}

func TestPullWithoutRuntimeProgress(t *testing.T) {
	env := newTestEnv(t, nil, testPod("web", "uid-pp3"))
	images := newProgressImages(false, 0, nil) // containerd's own CRI plugin reports nothing
	env.useImages(images, ImagePullConfig{SlowTimeout: 100 * time.Millisecond})
	env.start()
	env.eventually("the pull to start", func() bool { n, _ := images.counts(); return n == 1 })
	time.Sleep(500 * time.Millisecond)
	w := waitingOf(env.getPod("web"))
	if w == nil || w.Reason != reasonContainerCreating || w.Message != "" {
		t.Errorf("waiting %+v while pulling without progress, want ContainerCreating without message", w)
	}
	if _, cancelled := images.counts(); cancelled != 0 {
		t.Error("a pull without progress was judged slow")
	}
	close(images.release)
	env.eventually("the container running after the pull", func() bool {
		return containerStatusOf(env.getPod("web")).State.Running != nil
	})
}

func TestPullTrace(t *testing.T) {
	cfg := ImagePullConfig{MinBytesPerSecond: 1024, SlowTimeout: time.Minute}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	tr := pullTrace{keep: time.Minute}
	tr.add(at(0), pullProgress{BytesDone: 0})
	if tr.slow(at(0), cfg) != nil {
		t.Error("judged at the first sample")
	}
	// Size unknown (manifest not in yet): never judged.
	for s := 1; s <= 70; s++ {
		tr.add(at(s), pullProgress{})
	}
	if tr.slow(at(70), cfg) != nil {
		t.Error("judged before the size was known")
	}
	if got := tr.message("nginx", at(70), 5*time.Second); got != "Pulling nginx: 0.0 MB, 0 B/s" {
		t.Errorf("message %q", got)
	}

	tr = pullTrace{keep: time.Minute}
	for s := 0; s <= 59; s++ {
		tr.add(at(s), pullProgress{BytesDone: 300_000 + int64(s)*100, BytesTotal: 40_100_000})
	}
	if tr.slow(at(59), cfg) != nil {
		t.Error("judged before SlowTimeout passed")
	}
	tr.add(at(60), pullProgress{BytesDone: 306_000, BytesTotal: 40_100_000})
	slow := tr.slow(at(60), cfg)
	if slow == nil {
		t.Fatal("100 B/s for a minute not judged slow")
	}
	if got, want := slow.Error(), "pull cancelled: under 1.0 kB/s for 1m0s (at 0.3/40.1 MB)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if n := len(tr.samples); n > 62 {
		t.Errorf("%d samples kept for a one-minute window", n)
	}

	// A burst within the window lifts the rate over the floor.
	tr.add(at(61), pullProgress{BytesDone: 406_000, BytesTotal: 40_100_000})
	if tr.slow(at(61), cfg) != nil {
		t.Error("judged slow after 100 kB in the last minute")
	}
	if got := tr.message("nginx", at(61), 5*time.Second); got != "Pulling nginx: 0.4/40.1 MB, 20.1 kB/s" {
		t.Errorf("message %q", got)
	}

	// Every byte in (unpacking) or disabled: not judged.
	done := pullTrace{keep: time.Minute}
	for s := 0; s <= 120; s++ {
		done.add(at(s), pullProgress{BytesDone: 500, BytesTotal: 500})
	}
	if done.slow(at(120), cfg) != nil {
		t.Error("judged while unpacking")
	}
	if tr.slow(at(60), ImagePullConfig{MinBytesPerSecond: 1 << 30, SlowTimeout: -1}) != nil {
		t.Error("judged with the check disabled")
	}
}

func TestImagePullConfigDefaults(t *testing.T) {
	var cfg ImagePullConfig
	if err := cfg.validate(); err != nil || cfg.MinBytesPerSecond != 1024 || cfg.SlowTimeout != time.Minute {
		t.Errorf("defaults %+v (%v)", cfg, err)
	}
	if err := (&ImagePullConfig{MinBytesPerSecond: -1}).validate(); err == nil {
		t.Error("negative floor accepted")
	}
}

func TestFormatRate(t *testing.T) {
	for bps, want := range map[float64]string{3_210_000: "3.2 MB/s", 1024: "1.0 kB/s", 999: "999 B/s", -5: "0 B/s"} {
		if got := formatRate(bps); got != want {
			t.Errorf("formatRate(%v) = %q, want %q", bps, got, want)
		}
	}
}
