package mirror

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// downloadLayer GETs a blob and tells how big it was and how long it took.
func downloadLayer(t *testing.T, layerURL string) (int64, time.Duration) {
	t.Helper()
	start := time.Now()
	resp, err := http.Get(layerURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", layerURL, resp.Status)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return n, time.Since(start)
}

func TestThrottleSlowsBlobDownloads(t *testing.T) {
	img := randomImage(t) // two layers of 1 KiB
	dir := writeLayout(t, map[string]v1.Image{"nginx:latest": img})
	const rate = 4 << 10
	m, err := Start(context.Background(), "127.0.0.1:0", map[string]string{"docker.io/library/nginx:latest": dir}, WithThrottle(rate))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	layerURL := m.URL() + "/v2/library/nginx/blobs/" + d.String()

	n, took := downloadLayer(t, layerURL)
	if want := time.Duration(float64(n) / rate * float64(time.Second)); took < want*9/10 {
		t.Errorf("throttled download of %d bytes took %v, want at least %v", n, took, want)
	}
	// Manifests are not throttled.
	start := time.Now()
	resp, err := http.Get(m.URL() + "/v2/library/nginx/manifests/latest")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if took := time.Since(start); took > 200*time.Millisecond {
		t.Errorf("manifest took %v under a blob throttle", took)
	}

	m.SetThrottle(0)
	if _, took := downloadLayer(t, layerURL); took > 200*time.Millisecond {
		t.Errorf("unthrottled download took %v", took)
	}
}
