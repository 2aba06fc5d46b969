package cri

import (
	"archive/tar"
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"k8s.io/klog/v2"
)

// pauseFS holds cri/pause/pause, built from pause.c by cri/pause/build.sh. The whole
// directory is embedded so that a build without the binary still compiles and New
// fails with a clear message instead.
//
//go:embed pause
var pauseFS embed.FS

const (
	pauseBinaryPath = "pause/pause"
	// pauseUser is the nobody-like user the pause process runs as.
	pauseUser = "65535:65535"
)

// pauseImage is the pause image built in memory.
type pauseImage struct {
	manifest, config, layer []byte
	manifestDesc            ocispec.Descriptor
	configDesc, layerDesc   ocispec.Descriptor
}

// buildPauseImage makes a one-layer image holding /pause. Its content is
// deterministic, so its digest only changes with the binary.
func buildPauseImage() (*pauseImage, error) {
	bin, err := pauseFS.ReadFile(pauseBinaryPath)
	if err != nil {
		return nil, fmt.Errorf("pause binary missing from the build (run cri/pause/build.sh before go build): %w", err)
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	hdr := &tar.Header{Name: "pause", Mode: 0o755, Size: int64(len(bin)), Typeflag: tar.TypeReg,
		ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	p := &pauseImage{layer: layer.Bytes()}
	p.layerDesc = descriptorOf(ocispec.MediaTypeImageLayer, p.layer)

	cfg := ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Config: ocispec.ImageConfig{
			User:       pauseUser,
			Entrypoint: []string{"/pause"},
			StopSignal: "SIGTERM",
		},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{p.layerDesc.Digest}},
	}
	if p.config, err = json.Marshal(cfg); err != nil {
		return nil, err
	}
	p.configDesc = descriptorOf(ocispec.MediaTypeImageConfig, p.config)

	manifest := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    p.configDesc,
		Layers:    []ocispec.Descriptor{p.layerDesc},
	}
	if p.manifest, err = json.Marshal(manifest); err != nil {
		return nil, err
	}
	p.manifestDesc = descriptorOf(ocispec.MediaTypeImageManifest, p.manifest)
	return p, nil
}

func descriptorOf(mediaType string, data []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
}

// importPauseImage writes the pause image into containerd under cfg.PauseImage,
// pinned, and unpacks it. Nothing is downloaded.
func (s *service) importPauseImage(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	p, err := buildPauseImage()
	if err != nil {
		return err
	}
	ctx, done, err := s.client.WithLease(ctx)
	if err != nil {
		return fmt.Errorf("pause image lease: %w", err)
	}
	defer func() { _ = done(context.WithoutCancel(ctx)) }()

	cs := s.client.ContentStore()
	// The manifest's GC labels keep config and layer alive as long as an image record
	// points at the manifest.
	blobs := []struct {
		data   []byte
		desc   ocispec.Descriptor
		labels map[string]string
	}{
		{p.layer, p.layerDesc, nil},
		{p.config, p.configDesc, nil},
		{p.manifest, p.manifestDesc, map[string]string{
			"containerd.io/gc.ref.content.config": p.configDesc.Digest.String(),
			"containerd.io/gc.ref.content.l.0":    p.layerDesc.Digest.String(),
		}},
	}
	for _, b := range blobs {
		err := content.WriteBlob(ctx, cs, "skiff-pause-"+b.desc.Digest.Encoded(), bytes.NewReader(b.data), b.desc,
			content.WithLabels(b.labels))
		if err != nil && !errors.Is(err, errdefs.ErrAlreadyExists) {
			return fmt.Errorf("write pause image blob %s: %w", b.desc.Digest, err)
		}
	}
	img := images.Image{
		Name:   s.cfg.PauseImage,
		Target: p.manifestDesc,
		Labels: map[string]string{labelPinned: "pinned", labelManaged: "true"},
	}
	if err := s.putImageRecord(ctx, img); err != nil {
		return fmt.Errorf("create pause image record: %w", err)
	}
	ci := containerd.NewImage(s.client, img)
	if err := ci.Unpack(ctx, s.cfg.Snapshotter); err != nil {
		return fmt.Errorf("unpack pause image: %w", err)
	}
	logger.Info("Imported pause image", "image", s.cfg.PauseImage, "id", p.configDesc.Digest)
	return nil
}

// putImageRecord creates an image record or points an existing one at img's target.
func (s *service) putImageRecord(ctx context.Context, img images.Image) error {
	defer s.reloadImages(ctx)
	return s.writeImageRecord(ctx, img)
}

// writeImageRecord creates or updates an image record, leaving the index to the caller.
func (s *service) writeImageRecord(ctx context.Context, img images.Image) error {
	is := s.client.ImageService()
	if _, err := is.Create(ctx, img); err == nil || !errors.Is(err, errdefs.ErrAlreadyExists) {
		return err
	}
	_, err := is.Update(ctx, img, "target", "labels")
	return err
}
