package mirror

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/remotes/docker/config"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// writeLayout stores images in a fresh OCI layout, annotated with the given ref names.
func writeLayout(t *testing.T, imgs map[string]v1.Image) string {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	for ref, img := range imgs {
		if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{refNameAnnotation: ref})); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func randomImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func digest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestMirrorServesLayouts(t *testing.T) {
	ctx := context.Background()
	nginx, pause, busybox := randomImage(t), randomImage(t), randomImage(t)
	single := writeLayout(t, map[string]v1.Image{"nginx:latest": nginx})
	multi := writeLayout(t, map[string]v1.Image{"pause:3.10": pause, "busybox:1.29-2": busybox})

	m, err := Start(ctx, "127.0.0.1:0", map[string]string{
		"docker.io/library/nginx:latest": single,
		"nginx":                          single, // short name, same image
		"registry.k8s.io/pause:3.10":     multi,
		"registry.k8s.io/e2e-test-images/busybox:1.29-2":            multi,
		"registry.k8s.io/nginx-pinned@" + digest(t, nginx).String(): single,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })

	for path, want := range map[string]v1.Image{
		"library/nginx:latest":                      nginx,
		"pause:3.10":                                pause,
		"e2e-test-images/busybox:1.29-2":            busybox,
		"nginx-pinned@" + digest(t, nginx).String(): nginx,
	} {
		ref, err := name.ParseReference(m.Addr()+"/"+path, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		got, err := remote.Image(ref, remote.WithContext(ctx))
		if err != nil {
			t.Errorf("pull %s: %v", ref, err)
			continue
		}
		if digest(t, got) != digest(t, want) {
			t.Errorf("pull %s: digest %s, want %s", ref, digest(t, got), digest(t, want))
		}
		// Fetch the layers too: the registry must hold the blobs, not only the manifest.
		layers, err := got.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range layers {
			rc, err := l.Compressed()
			if err != nil {
				t.Errorf("pull %s layer: %v", ref, err)
				continue
			}
			rc.Close()
		}
	}

	if got, want := m.Hosts(), []string{"docker.io", "registry.k8s.io"}; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("Hosts() = %v, want %v", got, want)
	}

	if err := m.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := <-m.Done(); err != http.ErrServerClosed {
		t.Errorf("serve returned %v", err)
	}
}

// TestHostsDir checks the hosts.toml files with containerd's own parser.
func TestHostsDir(t *testing.T) {
	ctx := context.Background()
	dir := writeLayout(t, map[string]v1.Image{"x:1": randomImage(t)})
	m, err := Start(ctx, "127.0.0.1:0", map[string]string{
		"docker.io/library/x:1": dir,
		"registry.k8s.io/x:1":   dir,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })

	hostsDir := t.TempDir()
	if err := m.WriteHostsDir(hostsDir); err != nil {
		t.Fatal(err)
	}
	if err := WriteHostsFile(hostsDir, "gcr.io", m.URL()); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"docker.io", "registry.k8s.io", "gcr.io"} {
		if _, err := os.Stat(filepath.Join(hostsDir, h, "hosts.toml")); err != nil {
			t.Fatalf("hosts.toml for %s: %v", h, err)
		}
		hosts, err := config.ConfigureHosts(ctx, config.HostOptions{HostDir: config.HostDirFromRoot(hostsDir)})(h)
		if err != nil {
			t.Fatalf("containerd rejects hosts.toml for %s: %v", h, err)
		}
		if len(hosts) < 1 {
			t.Fatalf("%s: no hosts", h)
		}
		first := hosts[0]
		if first.Scheme != "http" || first.Host != m.Addr() || first.Path != "/v2" {
			t.Errorf("%s: first host %s://%s%s, want http://%s/v2", h, first.Scheme, first.Host, first.Path, m.Addr())
		}
		if first.Capabilities != docker.HostCapabilityPull|docker.HostCapabilityResolve {
			t.Errorf("%s: capabilities %b, want pull|resolve", h, first.Capabilities)
		}
	}
}

func TestStartRejectsBadInput(t *testing.T) {
	ctx := context.Background()
	dir := writeLayout(t, map[string]v1.Image{"x:1": randomImage(t)})
	for name, images := range map[string]map[string]string{
		"path collision": {"docker.io/library/x:1": dir, "quay.io/library/x:1": dir},
		"bad reference":  {"Not A Ref": dir},
		"missing layout": {"docker.io/library/y:1": filepath.Join(dir, "nope")},
		"ambiguous":      {"docker.io/library/z:2": writeLayout(t, map[string]v1.Image{"a:1": randomImage(t), "b:1": randomImage(t)})},
	} {
		if m, err := Start(ctx, "127.0.0.1:0", images); err == nil {
			m.Close()
			t.Errorf("%s: Start succeeded", name)
		}
	}
}
