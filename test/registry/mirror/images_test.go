package mirror

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestBuiltImages serves the layouts of test/images/build.sh (SKIFF_IMAGES=<its OUTDIR>, as
// `make e2e` sets it) under their upstream names and checks what a runtime would pull.
func TestBuiltImages(t *testing.T) {
	dir := os.Getenv("SKIFF_IMAGES")
	if dir == "" {
		t.Skip("SKIFF_IMAGES is not set; run test/images/build.sh first")
	}
	ctx := context.Background()
	m, err := Start(ctx, "127.0.0.1:0", map[string]string{
		"docker.io/library/nginx:latest":                 filepath.Join(dir, "nginx"),
		"registry.k8s.io/e2e-test-images/busybox:1.29-2": filepath.Join(dir, "busybox"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })

	nginx := pull(t, m, "library/nginx:latest")
	cf, err := nginx.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cf.Config.Entrypoint, []string{"nginx", "-g", "daemon off;"}) {
		t.Errorf("nginx entrypoint %q", cf.Config.Entrypoint)
	}
	if _, ok := cf.Config.ExposedPorts["80/tcp"]; !ok {
		t.Errorf("nginx exposes %v, want 80/tcp", cf.Config.ExposedPorts)
	}
	files := readFiles(t, nginx, "var/www/html/index.nginx-debian.html", "etc/passwd", "etc/group")
	for _, f := range []string{"usr/sbin/nginx", "bin/sh", "bin/ls", "etc/nginx/nginx.conf", "etc/nginx/sites-enabled/default"} {
		if files[f].hdr == nil {
			t.Errorf("nginx: no %s", f)
		}
	}
	if !strings.Contains(files["var/www/html/index.nginx-debian.html"].body, "Welcome to nginx!") {
		t.Error("nginx: no welcome page")
	}
	if !strings.Contains(files["etc/passwd"].body, "www-data:x:33:33:") || !strings.Contains(files["etc/group"].body, "www-data:x:33:") {
		t.Error("nginx: no www-data user and group")
	}
	for _, f := range []string{"var/log/nginx/access.log", "var/log/nginx/error.log"} {
		if h := files[f].hdr; h == nil || h.Typeflag != tar.TypeSymlink || !strings.HasPrefix(h.Linkname, "/dev/std") {
			t.Errorf("nginx: %s is not a link to the container's output: %+v", f, h)
		}
	}
	if h := files["var/lib/nginx/"].hdr; h == nil || h.Uid != 33 {
		t.Errorf("nginx: /var/lib/nginx not owned by www-data: %+v", h)
	}

	busybox := pull(t, m, "e2e-test-images/busybox:1.29-2")
	files = readFiles(t, busybox)
	for _, f := range []string{"bin/ls", "bin/sh", "usr/bin/pgrep", "usr/bin/ipcs"} {
		if files[f].hdr == nil {
			t.Errorf("busybox: no %s", f)
		}
	}
	// Hard links point at the first path of the inode in the layer (bin/arch, probably).
	if ls, bb := files["bin/ls"].hdr, files["bin/busybox"].hdr; ls == nil || bb == nil ||
		ls.Typeflag != tar.TypeLink || (ls.Linkname != "bin/busybox" && ls.Linkname != bb.Linkname) {
		t.Errorf("busybox: bin/ls is not a hard link to bin/busybox: %+v / %+v", ls, bb)
	}
}

func pull(t *testing.T, m *Mirror, path string) v1.Image {
	t.Helper()
	ref, err := name.ParseReference(m.Addr()+"/"+path, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	return img
}

type file struct {
	hdr  *tar.Header
	body string
}

// readFiles returns the headers of every entry of the image's layers, with the content of
// the named files.
func readFiles(t *testing.T, img v1.Image, withBody ...string) map[string]file {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]file{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			f := file{hdr: h}
			if slices.Contains(withBody, h.Name) {
				b, err := io.ReadAll(tr)
				if err != nil {
					t.Fatal(err)
				}
				f.body = string(b)
			}
			files[h.Name] = f
		}
		rc.Close()
	}
	return files
}
