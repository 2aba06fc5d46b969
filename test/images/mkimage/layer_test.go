package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
)

func makeTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "bin"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "tmp"), 0o755))
	must(os.Chmod(filepath.Join(root, "tmp"), 0o777|os.ModeSticky))
	must(os.WriteFile(filepath.Join(root, "bin", "busybox"), []byte("#!busybox"), 0o755))
	must(os.Link(filepath.Join(root, "bin", "busybox"), filepath.Join(root, "bin", "sh")))
	must(os.Link(filepath.Join(root, "bin", "busybox"), filepath.Join(root, "bin", "ls")))
	must(os.Symlink("/dev/stdout", filepath.Join(root, "access.log")))
	return root
}

func TestWriteLayerTar(t *testing.T) {
	root := makeTree(t)
	epoch := time.Unix(1700000000, 0).UTC()
	var a, b bytes.Buffer
	if err := writeLayerTar(&a, root, epoch); err != nil {
		t.Fatal(err)
	}
	// Touching the tree's timestamps must not change the layer.
	later := time.Now().Add(time.Hour)
	os.Chtimes(filepath.Join(root, "bin", "busybox"), later, later)
	if err := writeLayerTar(&b, root, epoch); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("the same tree gave two different layers")
	}

	got := map[string]*tar.Header{}
	tr := tar.NewReader(&a)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = h
		if !h.ModTime.Equal(epoch) {
			t.Errorf("%s: mtime %v, want %v", h.Name, h.ModTime, epoch)
		}
	}
	if h := got["bin/busybox"]; h == nil || h.Typeflag != tar.TypeReg || h.Size != int64(len("#!busybox")) || h.Mode&0o777 != 0o755 {
		t.Errorf("bin/busybox: %+v", h)
	}
	for _, n := range []string{"bin/ls", "bin/sh"} {
		if h := got[n]; h == nil || h.Typeflag != tar.TypeLink || h.Linkname != "bin/busybox" {
			t.Errorf("%s is not a hard link to bin/busybox: %+v", n, h)
		}
	}
	if h := got["access.log"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "/dev/stdout" {
		t.Errorf("access.log: %+v", h)
	}
	if h := got["tmp/"]; h == nil || h.Typeflag != tar.TypeDir || h.Mode&0o7777 != 0o1777 {
		t.Errorf("tmp/: %+v", h)
	}
}

func TestRunWritesLayout(t *testing.T) {
	root := makeTree(t)
	cfgFile := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(cfgFile, []byte(`{"Entrypoint":["nginx","-g","daemon off;"],"ExposedPorts":{"80/tcp":{}}}`), 0o644)
	out := filepath.Join(t.TempDir(), "img")
	o := options{rootfs: root, configFile: cfgFile, ref: "nginx:latest", out: out, epoch: time.Unix(0, 0).UTC(), arch: "amd64"}
	if err := run(o); err != nil {
		t.Fatal(err)
	}
	idx, err := layout.ImageIndexFromPath(out)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) != 1 || im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "nginx:latest" {
		t.Fatalf("index: %+v %v", im, err)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" || len(cf.Config.Entrypoint) != 3 || len(cf.RootFS.DiffIDs) != 1 {
		j, _ := json.Marshal(cf)
		t.Errorf("config: %s", j)
	}
	if _, ok := cf.Config.ExposedPorts["80/tcp"]; !ok {
		t.Error("80/tcp not exposed")
	}
	mt, _ := img.MediaType()
	if mt != "application/vnd.oci.image.manifest.v1+json" {
		t.Errorf("manifest media type %s", mt)
	}

	// A second run replaces the layout and gives the same digest.
	first := im.Manifests[0].Digest
	if err := run(o); err != nil {
		t.Fatal(err)
	}
	idx2, _ := layout.ImageIndexFromPath(out)
	im2, _ := idx2.IndexManifest()
	if len(im2.Manifests) != 1 || im2.Manifests[0].Digest != first {
		t.Errorf("rebuild: %+v, want one manifest %s", im2.Manifests, first)
	}
}
