package cri

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"k8s.io/klog/v2"
)

// infoPullProgress is the verbose ImageStatus info key carrying a pull in flight.
const infoPullProgress = "pullProgress"

// pullLeaseExpiry bounds how long the content of a pull whose lease could not be
// deleted (containerd gone) stays protected from garbage collection.
const pullLeaseExpiry = 24 * time.Hour

// pullTracker coalesces concurrent PullImage calls of one image reference into one
// containerd pull, and keeps the progress of each pull in flight for ImageStatus. A
// pull runs on a context of its own and is cancelled once every caller waiting on it
// has gone, so one impatient caller does not fail the others.
type pullTracker struct {
	mu    sync.Mutex
	pulls map[string]*pullJob // by normalized reference
}

func newPullTracker() *pullTracker {
	return &pullTracker{pulls: map[string]*pullJob{}}
}

// pullJob is one pull in flight and the callers waiting on it.
type pullJob struct {
	ref      string
	started  time.Time
	progress *pullProgress
	cancel   context.CancelFunc
	done     chan struct{}
	waiters  int // guarded by pullTracker.mu

	// imageID and err are the outcome, set before done is closed.
	imageID string
	err     error
}

// pullFunc pulls an image on ctx, recording its blobs in progress, and returns the
// image ID.
type pullFunc func(ctx context.Context, progress *pullProgress) (string, error)

// do runs pull for ref, or joins the pull of ref in flight, and waits until it ends or
// ctx does. The pull itself runs on a context derived from base.
func (t *pullTracker) do(ctx, base context.Context, ref string, pull pullFunc) (string, error) {
	job := t.join(base, ref, pull)
	select {
	case <-job.done:
		return job.imageID, job.err
	case <-ctx.Done():
		t.leave(job)
		return "", fmt.Errorf("pull image %q: %w", ref, ctx.Err())
	}
}

func (t *pullTracker) join(base context.Context, ref string, pull pullFunc) *pullJob {
	t.mu.Lock()
	defer t.mu.Unlock()
	if job, ok := t.pulls[ref]; ok {
		job.waiters++
		return job
	}
	ctx, cancel := context.WithCancel(base)
	job := &pullJob{ref: ref, started: time.Now(), progress: newPullProgress(), cancel: cancel,
		done: make(chan struct{}), waiters: 1}
	t.pulls[ref] = job
	go t.run(ctx, job, pull)
	return job
}

func (t *pullTracker) run(ctx context.Context, job *pullJob, pull pullFunc) {
	defer job.cancel()
	job.imageID, job.err = pull(ctx, job.progress)
	t.mu.Lock()
	t.forget(job)
	t.mu.Unlock()
	close(job.done)
}

// leave drops a caller that stopped waiting; the last one cancels the pull.
func (t *pullTracker) leave(job *pullJob) {
	t.mu.Lock()
	defer t.mu.Unlock()
	job.waiters--
	if job.waiters == 0 {
		// A caller arriving now starts a new pull rather than joining a cancelled one.
		t.forget(job)
		job.cancel()
	}
}

// forget removes job from the pulls in flight; t.mu must be held.
func (t *pullTracker) forget(job *pullJob) {
	if t.pulls[job.ref] == job {
		delete(t.pulls, job.ref)
	}
}

func (t *pullTracker) inFlight(ref string) *pullJob {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pulls[ref]
}

// pullProgress records the blobs (config and layers) of the manifest being pulled, as
// the pull's handler sees them, and which of them are fetched.
type pullProgress struct {
	mu       sync.Mutex
	sizes    map[digest.Digest]int64
	fetched  map[digest.Digest]bool
	received map[digest.Digest]int64 // bytes of a blob download so far, as they arrive
}

func newPullProgress() *pullProgress {
	return &pullProgress{sizes: map[digest.Digest]int64{}, fetched: map[digest.Digest]bool{}, received: map[digest.Digest]int64{}}
}

// track wraps the pull's fetch handler: a manifest's children are the blobs to count,
// and a descriptor whose handler returned is in the content store.
func (p *pullProgress) track(h images.Handler) images.Handler {
	return images.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		children, err := h.Handle(ctx, desc)
		if err != nil {
			return children, err
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if images.IsManifestType(desc.MediaType) {
			for _, c := range children {
				p.sizes[c.Digest] = c.Size
			}
		}
		p.fetched[desc.Digest] = true
		return children, nil
	})
}

// blobStatuses is the part of containerd's content store that tells how far blobs are.
type blobStatuses interface {
	Info(ctx context.Context, dgst digest.Digest) (content.Info, error)
	ListStatuses(ctx context.Context, filters ...string) ([]content.Status, error)
}

// bytes sums what is fetched of the tracked blobs: whole sizes of fetched (or already
// stored) blobs plus the offsets of active ingests. total is 0 until the manifest is in.
func (p *pullProgress) bytes(ctx context.Context, cs blobStatuses) (done, total int64, err error) {
	p.mu.Lock()
	pending := map[digest.Digest]int64{}
	for d, size := range p.sizes {
		total += size
		if p.fetched[d] {
			done += size
		} else {
			pending[d] = size
		}
	}
	p.mu.Unlock()
	if len(pending) == 0 {
		return done, total, nil
	}
	statuses, err := cs.ListStatuses(ctx)
	if err != nil {
		return done, total, fmt.Errorf("list ingests: %w", err)
	}
	p.mu.Lock()
	received := maps.Clone(p.received)
	p.mu.Unlock()
	for d, size := range pending {
		offset, ingesting := ingestOffset(statuses, d)
		if ingesting || received[d] > 0 {
			done += min(max(offset, received[d]), size)
		} else if _, err := cs.Info(ctx, d); err == nil {
			done += size // stored before this pull, or committed since the listing
		}
	}
	return done, total, nil
}

// ingestOffset finds the active ingest of a blob; containerd names it
// "<kind>-<digest>" (remotes.MakeRefKey).
func ingestOffset(statuses []content.Status, d digest.Digest) (int64, bool) {
	for _, st := range statuses {
		if st.Expected == d || strings.HasSuffix(st.Ref, d.String()) {
			return st.Offset, true
		}
	}
	return 0, false
}

// pullProgressInfo is the JSON of info["pullProgress"] in a verbose ImageStatus.
type pullProgressInfo struct {
	Ref        string    `json:"ref"`
	BytesDone  int64     `json:"bytesDone"`
	BytesTotal int64     `json:"bytesTotal"`
	StartedAt  time.Time `json:"startedAt"` // RFC 3339 with nanoseconds
}

// pullProgressJSON reports the pull of ref in flight, if any.
func (s *service) pullProgressJSON(ctx context.Context, ref string) (string, bool) {
	named, err := normalizeImageRef(ref)
	if err != nil {
		return "", false
	}
	job := s.images.pulls.inFlight(named.String())
	if job == nil {
		return "", false
	}
	done, total, err := job.progress.bytes(ctx, s.client.ContentStore())
	if err != nil {
		// The blobs already fetched still count; the next poll will see the rest.
		klog.FromContext(ctx).V(4).Info("Reading pull progress", "image", job.ref, "err", err)
	}
	raw, err := json.Marshal(pullProgressInfo{Ref: job.ref, BytesDone: done, BytesTotal: total, StartedAt: job.started})
	if err != nil {
		return "", false
	}
	return string(raw), true
}

// withPullLease puts the pull under a lease of its own, so that ending it releases
// everything the pull holds: containerd's Pull deletes its own lease with the pull's
// context, which fails once that context is cancelled, and would leave the partial
// ingests protected for a day. release deletes the lease; after a failure it waits for
// the garbage collection that removes the ingests.
func (s *service) withPullLease(ctx context.Context) (context.Context, func(failed bool), error) {
	ls := s.client.LeasesService()
	l, err := ls.Create(ctx, leases.WithRandomID(), leases.WithExpiration(pullLeaseExpiry))
	if err != nil {
		return ctx, nil, fmt.Errorf("create pull lease: %w", err)
	}
	release := func(failed bool) {
		ctx := context.WithoutCancel(ctx)
		var opts []leases.DeleteOpt
		if failed {
			opts = append(opts, leases.SynchronousDelete)
		}
		if err := ls.Delete(ctx, l, opts...); err != nil {
			klog.FromContext(ctx).Error(err, "Deleting pull lease", "lease", l.ID)
		}
	}
	return leases.WithLease(ctx, l.ID), release, nil
}

// countBlobs makes a registry client count the bytes of blob downloads as they arrive.
// The content store alone cannot tell: containerd copies a blob into its ingest in full
// 1 MiB buffers, so under about 100 kB/s an ingest's offset stands still for seconds and a
// slow pull would look stalled.
func (p *pullProgress) countBlobs(c *http.Client) error {
	next := c.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	c.Transport = &countingTransport{next: next, progress: p}
	return nil
}

// countingTransport wraps the bodies of successful blob GETs so that their bytes count.
type countingTransport struct {
	next     http.RoundTripper
	progress *pullProgress
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet || resp.StatusCode/100 != 2 {
		return resp, err
	}
	origin := req // a blob GET may be redirected to storage elsewhere
	for origin.Response != nil && origin.Response.Request != nil {
		origin = origin.Response.Request
	}
	d, ok := blobDigest(origin.URL.Path)
	if !ok {
		return resp, nil
	}
	body := &countingBody{ReadCloser: resp.Body, progress: t.progress, blob: d, count: rangeStart(resp)}
	t.progress.setReceived(d, body.count) // a new download of the blob starts over here
	resp.Body = body
	return resp, nil
}

// blobDigest is the digest of a registry blob path (/v2/<name>/blobs/<digest>).
func blobDigest(urlPath string) (digest.Digest, bool) {
	i := strings.LastIndex(urlPath, "/blobs/")
	if i < 0 {
		return "", false
	}
	d, err := digest.Parse(urlPath[i+len("/blobs/"):])
	return d, err == nil
}

// rangeStart is where a partial response (a resumed download) starts, or 0.
func rangeStart(resp *http.Response) int64 {
	var start, end, size int64
	if resp.StatusCode != http.StatusPartialContent {
		return 0
	}
	if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/%d", &start, &end, &size); err != nil {
		return 0
	}
	return start
}

func (p *pullProgress) setReceived(d digest.Digest, n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.received[d] = n
}

// countingBody counts what is read of one blob download.
type countingBody struct {
	io.ReadCloser
	progress *pullProgress
	blob     digest.Digest
	count    int64
}

func (b *countingBody) Read(buf []byte) (int, error) {
	n, err := b.ReadCloser.Read(buf)
	if n > 0 {
		b.count += int64(n)
		b.progress.setReceived(b.blob, b.count)
	}
	return n, err
}
