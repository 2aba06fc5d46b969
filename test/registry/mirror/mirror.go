package mirror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"k8s.io/klog/v2"
)

// refNameAnnotation names an image inside an OCI layout's index.
const refNameAnnotation = "org.opencontainers.image.ref.name"

// Mirror is a running registry holding the images it was started with.
type Mirror struct {
	ln     net.Listener
	srv    *http.Server
	served chan error
	hosts  []string // upstream hosts of the images, as containerd names them
	// throttle caps blob downloads, in bytes per second (0: unthrottled).
	throttle atomic.Int64

	closeOnce sync.Once
	closeErr  error
}

// Option configures a Mirror at Start.
type Option func(*Mirror)

// WithThrottle caps every blob download at bytesPerSecond (0: unthrottled), so that tests
// can make a pull slow. Pushes and manifests are not throttled.
func WithThrottle(bytesPerSecond int64) Option {
	return func(m *Mirror) { m.SetThrottle(bytesPerSecond) }
}

// Start serves a registry on addr ("127.0.0.1:0" picks a free port) and pushes each layout
// of images (upstream reference -> OCI layout directory) under the reference's path.
// The registry keeps everything in memory. ctx bounds the pushes only; the mirror serves
// until Close.
func Start(ctx context.Context, addr string, images map[string]string, opts ...Option) (*Mirror, error) {
	plan, hosts, err := planPushes(images)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	m := &Mirror{ln: ln, served: make(chan error, 1), hosts: hosts}
	for _, opt := range opts {
		opt(m)
	}
	m.srv = &http.Server{
		Handler:           m.throttled(registry.New(registry.Logger(log.New(io.Discard, "", 0)))),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { m.served <- m.srv.Serve(ln) }()

	for _, p := range plan {
		if err := m.push(ctx, p.upstream, p.path, p.layout); err != nil {
			m.Close()
			return nil, err
		}
	}
	klog.FromContext(ctx).V(2).Info("Registry mirror ready", "addr", m.Addr(), "images", len(plan), "hosts", hosts)
	return m, nil
}

// Addr is the host:port the mirror listens on.
func (m *Mirror) Addr() string { return m.ln.Addr().String() }

// URL is the mirror's base URL, as written into hosts.toml.
func (m *Mirror) URL() string { return "http://" + m.Addr() }

// Hosts are the upstream registry hosts of the mirror's images (e.g. "docker.io").
func (m *Mirror) Hosts() []string { return slices.Clone(m.hosts) }

// SetThrottle changes the cap on blob downloads (0: unthrottled); it applies to downloads
// that start afterwards.
func (m *Mirror) SetThrottle(bytesPerSecond int64) { m.throttle.Store(max(bytesPerSecond, 0)) }

// Close stops serving. It is safe to call more than once.
func (m *Mirror) Close() error {
	m.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := m.srv.Shutdown(ctx); err != nil {
			// Clients that keep connections open (containerd's resolver does) must not
			// keep the mirror alive: close them.
			if closeErr := m.srv.Close(); closeErr != nil {
				m.closeErr = fmt.Errorf("stop registry mirror: %w", errors.Join(err, closeErr))
			}
		}
	})
	return m.closeErr
}

// Done receives the serve error (http.ErrServerClosed after Close) once the mirror stops.
func (m *Mirror) Done() <-chan error { return m.served }

// WriteHostsDir writes dir/<host>/hosts.toml for every upstream host of the mirror's images.
func (m *Mirror) WriteHostsDir(dir string) error {
	for _, h := range m.hosts {
		if err := WriteHostsFile(dir, h, m.URL()); err != nil {
			return err
		}
	}
	return nil
}

// WriteHostsFile writes dir/<host>/hosts.toml sending pulls of host to mirrorURL, in
// containerd's registry host configuration format. Resolving through the mirror keeps tags
// working; "push" is left out since a mirror is not where images are published.
func WriteHostsFile(dir, host, mirrorURL string) error {
	content := fmt.Sprintf(`# Written by skiff's test registry mirror.
server = %q

[host.%q]
  capabilities = ["pull", "resolve"]
`, upstreamServer(host), mirrorURL)
	path := filepath.Join(dir, host, "hosts.toml")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write hosts.toml for %s: %w", host, err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		return fmt.Errorf("write hosts.toml for %s: %w", host, err)
	}
	return nil
}

// upstreamServer is the registry containerd would talk to without a mirror.
func upstreamServer(host string) string {
	if host == "docker.io" {
		return "https://registry-1.docker.io"
	}
	return "https://" + host
}

// push is one image to load: its upstream reference, its path in the mirror, its layout.
type push struct{ upstream, path, layout string }

// planPushes parses the image references and checks that no two claim the same mirror path.
func planPushes(images map[string]string) ([]push, []string, error) {
	var plan []push
	type parsed struct {
		name.Reference
		raw string
	}
	owner := map[string]parsed{}
	hostSet := map[string]bool{}
	for ref, dir := range images {
		r, err := name.ParseReference(ref)
		if err != nil {
			return nil, nil, fmt.Errorf("image %q: %w", ref, err)
		}
		host := containerdHost(r.Context().RegistryStr())
		path := r.Context().RepositoryStr() + separator(r) + r.Identifier()
		if prev, ok := owner[path]; ok {
			if prev.Name() == r.Name() && images[prev.raw] == dir {
				continue // the same image under two spellings, e.g. "nginx" and "docker.io/library/nginx:latest"
			}
			return nil, nil, fmt.Errorf("images %q and %q both map to mirror path %q", prev.raw, ref, path)
		}
		owner[path] = parsed{Reference: r, raw: ref}
		hostSet[host] = true
		plan = append(plan, push{upstream: ref, path: path, layout: dir})
	}
	sort.Slice(plan, func(i, j int) bool { return plan[i].upstream < plan[j].upstream })
	hosts := make([]string, 0, len(hostSet))
	for h := range hostSet {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	return plan, hosts, nil
}

func separator(r name.Reference) string {
	if _, ok := r.(name.Digest); ok {
		return "@"
	}
	return ":"
}

// containerdHost maps go-containerregistry's name for Docker Hub back to the one containerd
// uses for its hosts directory.
func containerdHost(registry string) string {
	if registry == name.DefaultRegistry {
		return "docker.io"
	}
	return registry
}

// push loads the image of an OCI layout into the mirror under path.
func (m *Mirror) push(ctx context.Context, upstream, path, dir string) error {
	dst, err := name.ParseReference(m.Addr()+"/"+path, name.Insecure)
	if err != nil {
		return fmt.Errorf("image %q: %w", upstream, err)
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return fmt.Errorf("image %q: read layout %s: %w", upstream, dir, err)
	}
	manifest, err := idx.IndexManifest()
	if err != nil {
		return fmt.Errorf("image %q: read layout %s: %w", upstream, dir, err)
	}
	desc, err := pickManifest(manifest.Manifests, upstream)
	if err != nil {
		return fmt.Errorf("image %q: layout %s: %w", upstream, dir, err)
	}
	// A transport of its own whose connections are closed after the push: a pooled
	// connection left open to our own server would hold Close's Shutdown until it times out.
	transport := remote.DefaultTransport.(*http.Transport).Clone()
	defer transport.CloseIdleConnections()
	opts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(transport)}
	if desc.MediaType.IsIndex() {
		child, err := idx.ImageIndex(desc.Digest)
		if err == nil {
			err = remote.WriteIndex(dst, child, opts...)
		}
		if err != nil {
			return fmt.Errorf("image %q: push index: %w", upstream, err)
		}
		return nil
	}
	img, err := idx.Image(desc.Digest)
	if err == nil {
		err = remote.Write(dst, img, opts...)
	}
	if err != nil {
		return fmt.Errorf("image %q: push: %w", upstream, err)
	}
	return nil
}

// pickManifest chooses the layout entry for an image: the only one, or the one whose
// ref.name annotation is the reference, its last path element with tag ("nginx:latest"),
// or its tag alone ("latest").
func pickManifest(descs []v1.Descriptor, upstream string) (v1.Descriptor, error) {
	if len(descs) == 1 {
		return descs[0], nil
	}
	r, err := name.ParseReference(upstream)
	if err != nil {
		return v1.Descriptor{}, err
	}
	repo := r.Context().RepositoryStr()
	short := repo[strings.LastIndex(repo, "/")+1:] + separator(r) + r.Identifier()
	for _, d := range descs {
		switch d.Annotations[refNameAnnotation] {
		case upstream, r.Name(), short, r.Identifier():
			return d, nil
		}
	}
	if len(descs) == 0 {
		return v1.Descriptor{}, errors.New("no manifest in index.json")
	}
	return v1.Descriptor{}, fmt.Errorf("%d manifests and none is annotated %s=%q", len(descs), refNameAnnotation, short)
}
