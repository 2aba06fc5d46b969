package cri

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-sh/skiff/test/registry/mirror"
)

// blockingPull is a pullFunc that runs until its context ends, counting its runs.
type blockingPull struct {
	runs    atomic.Int32
	started chan context.Context
}

func newBlockingPull() *blockingPull { return &blockingPull{started: make(chan context.Context, 10)} }

func (b *blockingPull) pull(ctx context.Context, _ *pullProgress) (string, error) {
	b.runs.Add(1)
	b.started <- ctx
	<-ctx.Done()
	return "", ctx.Err()
}

func (t *pullTracker) waiters(ref string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if job := t.pulls[ref]; job != nil {
		return job.waiters
	}
	return 0
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPullTrackerCancelsOnlyWhenEveryCallerHasGone(t *testing.T) {
	const ref = "docker.io/library/nginx:latest"
	tr, b := newPullTracker(), newBlockingPull()
	type result struct {
		id  string
		err error
	}
	call := func() (context.CancelFunc, chan result) {
		ctx, cancel := context.WithCancel(context.Background())
		out := make(chan result, 1)
		go func() {
			id, err := tr.do(ctx, context.Background(), ref, b.pull)
			out <- result{id, err}
		}()
		return cancel, out
	}
	cancelA, outA := call()
	pullCtx := <-b.started
	cancelB, outB := call()
	waitFor(t, "the second caller to join", func() bool { return tr.waiters(ref) == 2 })

	cancelA()
	if r := <-outA; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("first caller got %v, want context.Canceled", r.err)
	}
	select {
	case <-pullCtx.Done():
		t.Fatal("pull cancelled while a caller still waits on it")
	case <-time.After(100 * time.Millisecond):
	}
	if tr.inFlight(ref) == nil {
		t.Fatal("pull no longer in flight after one of two callers left")
	}

	cancelB()
	if r := <-outB; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("second caller got %v, want context.Canceled", r.err)
	}
	select {
	case <-pullCtx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("pull not cancelled after every caller left")
	}
	if tr.inFlight(ref) != nil {
		t.Error("cancelled pull still in flight")
	}
	// A caller arriving afterwards starts a new pull rather than joining the cancelled one.
	cancelC, outC := call()
	<-b.started
	cancelC()
	<-outC
	if n := b.runs.Load(); n != 2 {
		t.Errorf("%d pulls ran, want 2", n)
	}
}

func TestPullTrackerSharesOneResult(t *testing.T) {
	const ref = "docker.io/library/busybox:latest"
	tr := newPullTracker()
	release := make(chan struct{})
	var runs atomic.Int32
	pull := func(ctx context.Context, _ *pullProgress) (string, error) {
		runs.Add(1)
		<-release
		return "sha256:" + hex64('a'), nil
	}
	ids := make(chan string, 3)
	for range 3 {
		go func() {
			id, err := tr.do(context.Background(), context.Background(), ref, pull)
			if err != nil {
				t.Error(err)
			}
			ids <- id
		}()
	}
	waitFor(t, "three callers on one pull", func() bool { return tr.waiters(ref) == 3 })
	close(release)
	for range 3 {
		if id := <-ids; id != "sha256:"+hex64('a') {
			t.Errorf("caller got %q", id)
		}
	}
	if runs.Load() != 1 || tr.inFlight(ref) != nil {
		t.Errorf("runs %d, in flight %v; want one pull, gone when done", runs.Load(), tr.inFlight(ref))
	}
}

// fakeBlobs is a content store's view of ingests and stored blobs.
type fakeBlobs struct {
	ingests []content.Status
	stored  map[digest.Digest]bool
}

func (f *fakeBlobs) Info(_ context.Context, d digest.Digest) (content.Info, error) {
	if f.stored[d] {
		return content.Info{Digest: d}, nil
	}
	return content.Info{}, fmt.Errorf("blob %s: %w", d, errdefs.ErrNotFound)
}

func (f *fakeBlobs) ListStatuses(context.Context, ...string) ([]content.Status, error) {
	return f.ingests, nil
}

func TestPullProgressBytes(t *testing.T) {
	desc := func(mt, data string, size int64) ocispec.Descriptor {
		return ocispec.Descriptor{MediaType: mt, Digest: digest.FromString(data), Size: size}
	}
	manifest := desc(ocispec.MediaTypeImageManifest, "manifest", 500)
	config := desc(ocispec.MediaTypeImageConfig, "config", 100)
	layer1 := desc(ocispec.MediaTypeImageLayerGzip, "layer1", 1000)
	layer2 := desc(ocispec.MediaTypeImageLayerGzip, "layer2", 2000)
	fetch := images.HandlerFunc(func(_ context.Context, d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if d.Digest == manifest.Digest {
			return []ocispec.Descriptor{config, layer1, layer2}, nil
		}
		return nil, nil
	})
	p := newPullProgress()
	h := p.track(fetch)
	blobs := &fakeBlobs{stored: map[digest.Digest]bool{}}
	ctx := context.Background()
	check := func(what string, wantDone, wantTotal int64) {
		t.Helper()
		done, total, err := p.bytes(ctx, blobs)
		if err != nil || done != wantDone || total != wantTotal {
			t.Errorf("%s: %d/%d (%v), want %d/%d", what, done, total, err, wantDone, wantTotal)
		}
	}
	check("before the manifest", 0, 0)
	if _, err := h.Handle(ctx, manifest); err != nil {
		t.Fatal(err)
	}
	check("manifest in", 0, 3100)
	if _, err := h.Handle(ctx, config); err != nil {
		t.Fatal(err)
	}
	blobs.ingests = []content.Status{{Ref: "layer-" + layer1.Digest.String(), Offset: 300, Total: 1000}}
	check("config fetched, layer1 ingesting", 400, 3100)
	blobs.stored[layer2.Digest] = true // unpacked before, skipped by this pull
	check("layer2 already stored", 2400, 3100)
	blobs.ingests = nil
	if _, err := h.Handle(ctx, layer1); err != nil {
		t.Fatal(err)
	}
	check("layer1 fetched", 3100, 3100)

	// A failed fetch does not count.
	failing := newPullProgress()
	_, _ = failing.track(images.HandlerFunc(func(context.Context, ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		return nil, errors.New("connection reset")
	})).Handle(ctx, manifest)
	if done, total, _ := failing.bytes(ctx, blobs); done != 0 || total != 0 {
		t.Errorf("failed manifest fetch: %d/%d, want 0/0", done, total)
	}
}

func TestPullProgressJSON(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 600, time.UTC)
	raw, err := json.Marshal(pullProgressInfo{Ref: "docker.io/library/nginx:latest", BytesDone: 12, BytesTotal: 40, StartedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"ref":"docker.io/library/nginx:latest","bytesDone":12,"bytesTotal":40,"startedAt":"2025-01-02T03:04:05.0000006Z"}`
	if string(raw) != want {
		t.Errorf("got %s\nwant %s", raw, want)
	}
}

// slowImageLayout writes an OCI layout of a linux image with one random layer of size bytes.
func slowImageLayout(t *testing.T, ref string, size int64) string {
	t.Helper()
	img, err := random.Image(size, 1)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", runtime.GOARCH
	cfg.Config.Cmd = []string{"/bin/true"}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{ocispec.AnnotationRefName: ref})); err != nil {
		t.Fatal(err)
	}
	return dir
}

// progressOf reads info["pullProgress"] of a verbose ImageStatus; ok is false without one.
func (e *testEnv) progressOf(image string) (pullProgressInfo, *runtimeapi.Image, bool) {
	e.t.Helper()
	resp, err := e.img.ImageStatus(e.ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: image}, Verbose: true})
	if err != nil {
		e.t.Fatalf("ImageStatus %s: %v", image, err)
	}
	raw, ok := resp.GetInfo()[infoPullProgress]
	if !ok {
		return pullProgressInfo{}, resp.GetImage(), false
	}
	var p pullProgressInfo
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		e.t.Fatalf("pullProgress %q: %v", raw, err)
	}
	return p, resp.GetImage(), true
}

func TestIntegrationPullProgress(t *testing.T) {
	e := newTestEnv(t)
	const image = "docker.io/library/slowpoke:1"
	const size = 3 << 20
	m, err := mirror.Start(e.ctx, "127.0.0.1:0", map[string]string{image: slowImageLayout(t, "slowpoke:1", size)},
		mirror.WithThrottle(256<<10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	if err := m.WriteHostsDir(e.cfg.RegistryConfigDir); err != nil {
		t.Fatal(err)
	}

	pull := func() (context.CancelFunc, chan error) {
		ctx, cancel := context.WithCancel(e.ctx)
		out := make(chan error, 1)
		go func() {
			_, err := e.img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "slowpoke:1"}})
			out <- err
		}()
		return cancel, out
	}
	cancelA, outA := pull()
	cancelB, outB := pull()
	defer cancelA()
	defer cancelB()

	var first pullProgressInfo
	waitFor(t, "pull progress with bytes", func() bool {
		p, img, ok := e.progressOf("slowpoke:1")
		if img != nil {
			t.Fatalf("image reported present during its first pull: %v", img)
		}
		first = p
		return ok && p.BytesTotal > size && p.BytesDone > 0
	})
	if first.Ref != image || time.Since(first.StartedAt) > time.Minute || first.BytesDone >= first.BytesTotal {
		t.Errorf("progress %+v", first)
	}

	cancelA()
	if err := <-outA; status.Code(err) != codes.Canceled {
		t.Fatalf("cancelled caller got %v", err)
	}
	// The other caller still waits, and the pull goes on for it.
	waitFor(t, "the pull to go on for the remaining caller", func() bool {
		p, _, ok := e.progressOf("slowpoke:1")
		if !ok {
			t.Fatal("pull stopped when one of two callers left")
		}
		return p.BytesDone > first.BytesDone
	})
	select {
	case err := <-outB:
		t.Fatalf("remaining caller returned early: %v", err)
	default:
	}

	cancelB()
	if err := <-outB; status.Code(err) != codes.Canceled {
		t.Fatalf("second cancelled caller got %v", err)
	}
	waitFor(t, "the cancelled pull to end", func() bool { _, _, ok := e.progressOf("slowpoke:1"); return !ok })
	e.assertNoIngests()

	// Unthrottled, the same image pulls through and has no progress to report.
	m.SetThrottle(0)
	if _, err := e.img.PullImage(e.ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "slowpoke:1"}}); err != nil {
		t.Fatalf("PullImage: %v", err)
	}
	if _, img, ok := e.progressOf("slowpoke:1"); ok || img == nil {
		t.Errorf("after the pull: image %v, progress reported %v", img, ok)
	}
	e.assertNoIngests()
}

// assertNoIngests checks that nothing is left half-written in the test namespace, nor a
// lease holding it, once a cancelled pull has wound down.
func (e *testEnv) assertNoIngests() {
	e.t.Helper()
	c, err := containerd.New(e.daemon.Address())
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Close()
	ctx := namespaces.WithNamespace(e.ctx, e.cfg.Namespace)
	var left []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		statuses, err := c.ContentStore().ListStatuses(ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		ls, err := c.LeasesService().List(ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		left = left[:0]
		for _, st := range statuses {
			left = append(left, fmt.Sprintf("ingest %s (%d/%d)", st.Ref, st.Offset, st.Total))
		}
		for _, l := range ls {
			left = append(left, "lease "+l.ID)
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("left in containerd: %s", strings.Join(left, ", "))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCountBlobs: the bytes of a blob download count as they arrive, also after a
// redirect to storage elsewhere, and a resumed download counts from where it resumes.
func TestCountBlobs(t *testing.T) {
	blob := digest.FromString("layer")
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/blobs/"+blob.String()) && r.Header.Get("Range") == "":
			http.Redirect(w, r, "/storage/object", http.StatusTemporaryRedirect)
		case strings.HasSuffix(r.URL.Path, "/blobs/"+blob.String()):
			w.Header().Set("Content-Range", "bytes 5000-5999/6000")
			w.WriteHeader(http.StatusPartialContent)
			_, _ = w.Write(make([]byte, 1000))
		case r.URL.Path == "/storage/object":
			_, _ = w.Write(make([]byte, 1000))
			w.(http.Flusher).Flush()
			<-release
			_, _ = w.Write(make([]byte, 500))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	p := newPullProgress()
	client := &http.Client{}
	if err := p.countBlobs(client); err != nil {
		t.Fatal(err)
	}
	received := func() int64 {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.received[blob]
	}
	resp, err := client.Get(srv.URL + "/v2/library/x/blobs/" + blob.String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if got := received(); got != 1000 {
		t.Errorf("received %d while the download goes on, want 1000", got)
	}
	close(release)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if got := received(); got != 1500 {
		t.Errorf("received %d after the download, want 1500", got)
	}

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v2/library/x/blobs/"+blob.String(), nil)
	req.Header.Set("Range", "bytes=5000-")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if got := received(); got != 6000 {
		t.Errorf("received %d after a resumed download, want 6000", got)
	}
	if _, err := client.Get(srv.URL + "/v2/library/x/manifests/latest"); err != nil {
		t.Fatal(err)
	}
	if len(p.received) != 1 {
		t.Errorf("counted downloads %v, want the blob only", p.received)
	}
}
