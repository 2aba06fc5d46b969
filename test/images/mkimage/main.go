package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

type options struct {
	rootfs, configFile, ref, out string
	epoch                        time.Time
	arch                         string
}

func main() {
	var o options
	flag.StringVar(&o.rootfs, "rootfs", "", "root filesystem directory (required)")
	flag.StringVar(&o.configFile, "config", "", "JSON file with the image runtime config")
	flag.StringVar(&o.ref, "ref", "", "org.opencontainers.image.ref.name of the image in the layout, e.g. nginx:latest")
	flag.StringVar(&o.out, "out", "", "OCI layout directory to write (required; replaced)")
	flag.StringVar(&o.arch, "arch", "amd64", "image architecture")
	epoch := flag.Int64("epoch", defaultEpoch(), "timestamp of every file, the layer and the image (seconds since 1970)")
	flag.Parse()
	o.epoch = time.Unix(*epoch, 0).UTC()
	if o.rootfs == "" || o.out == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func defaultEpoch() int64 {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		if v, err := strconv.ParseInt(s, 10, 64); err == nil {
			return v
		}
	}
	return 0
}

func run(o options) error {
	var cfg v1.Config
	if o.configFile != "" {
		data, err := os.ReadFile(o.configFile)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(data, &cfg); err != nil {
			return fmt.Errorf("parse %s: %w", o.configFile, err)
		}
	}

	layerFile, err := os.CreateTemp("", "mkimage-layer-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(layerFile.Name())
	if err := writeLayerTar(layerFile, o.rootfs, o.epoch); err != nil {
		layerFile.Close()
		return fmt.Errorf("pack %s: %w", o.rootfs, err)
	}
	if err := layerFile.Close(); err != nil {
		return err
	}

	img, err := buildImage(layerFile.Name(), cfg, o)
	if err != nil {
		return err
	}
	return writeLayout(img, o)
}

// buildImage makes a one-layer OCI image from an uncompressed layer tar.
func buildImage(layerTar string, cfg v1.Config, o options) (v1.Image, error) {
	layer, err := tarball.LayerFromFile(layerTar, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	created := v1.Time{Time: o.epoch}
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: o.arch,
		OS:           "linux",
		Created:      created,
		Config:       cfg,
		RootFS:       v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, err
	}
	return mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{Created: created, CreatedBy: "skiff mkimage " + filepath.Base(o.rootfs)},
	})
}

// writeLayout writes the image as the only manifest of a fresh layout at o.out.
func writeLayout(img v1.Image, o options) error {
	parent := filepath.Dir(o.out)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, ".mkimage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	p, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return err
	}
	var opts []layout.Option
	if o.ref != "" {
		opts = append(opts, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": o.ref}))
	}
	opts = append(opts, layout.WithPlatform(v1.Platform{OS: "linux", Architecture: o.arch}))
	if err := p.AppendImage(img, opts...); err != nil {
		return fmt.Errorf("write layout: %w", err)
	}
	if err := os.RemoveAll(o.out); err != nil {
		return err
	}
	return os.Rename(tmp, o.out)
}
