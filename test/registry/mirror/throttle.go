package mirror

import (
	"context"
	"net/http"
	"strings"
	"time"
)

// maxThrottleChunk bounds one write of a throttled body, so that a high rate still
// arrives as a steady stream rather than in bursts.
const maxThrottleChunk = 64 << 10

// throttled serves blob downloads (GET /v2/<name>/blobs/<digest>) at the mirror's
// throttle, read per request.
func (m *Mirror) throttled(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rate := m.throttle.Load()
		if rate <= 0 || r.Method != http.MethodGet || !isBlobDownload(r.URL.Path) {
			h.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(&throttledWriter{ResponseWriter: w, ctx: r.Context(), rate: rate, start: time.Now()}, r)
	})
}

func isBlobDownload(path string) bool {
	return strings.HasPrefix(path, "/v2/") && strings.Contains(path, "/blobs/") && !strings.Contains(path, "/blobs/uploads")
}

// throttledWriter paces a response body at rate bytes per second from start, flushing
// each chunk so that the client sees the bytes as they are let through.
type throttledWriter struct {
	http.ResponseWriter
	ctx   context.Context
	rate  int64
	start time.Time
	sent  int64
}

func (w *throttledWriter) Write(p []byte) (int, error) {
	chunk := int(min(max(w.rate/10, 1), maxThrottleChunk))
	written := 0
	for len(p) > 0 {
		n := min(chunk, len(p))
		due := w.start.Add(time.Duration(float64(w.sent+int64(n)) / float64(w.rate) * float64(time.Second)))
		if err := sleepUntil(w.ctx, due); err != nil {
			return written, err
		}
		m, err := w.ResponseWriter.Write(p[:n])
		written += m
		w.sent += int64(m)
		if err != nil {
			return written, err
		}
		_ = http.NewResponseController(w.ResponseWriter).Flush()
		p = p[n:]
	}
	return written, nil
}

// sleepUntil waits for t, or returns the context's error when the client goes away.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
