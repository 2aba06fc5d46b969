package cri

import (
	"errors"
	"slices"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestImageIndex(t *testing.T) {
	var x imageIndex
	lists := 0
	list := func() ([]*criImage, error) {
		lists++
		return []*criImage{{names: []string{"a"}}}, nil
	}
	get := func() {
		t.Helper()
		if got, err := x.get(list); err != nil || len(got) != 1 {
			t.Fatalf("get = %v, %v", got, err)
		}
	}
	get()
	get()
	if lists != 2 {
		t.Errorf("without an event subscription every get lists: %d lists, want 2", lists)
	}
	x.setWatching(true)
	get()
	get()
	if lists != 3 {
		t.Errorf("while watching a listing is kept: %d lists, want 3", lists)
	}
	x.invalidate()
	get()
	if lists != 4 {
		t.Errorf("after invalidate: %d lists, want 4", lists)
	}
	// A change during a listing: the listing may predate it and is not kept.
	racing := func() ([]*criImage, error) {
		lists++
		x.invalidate()
		return []*criImage{{names: []string{"stale"}}}, nil
	}
	x.invalidate()
	if _, err := x.get(racing); err != nil {
		t.Fatal(err)
	}
	get()
	if lists != 6 {
		t.Errorf("a listing that raced with a change was kept: %d lists, want 6", lists)
	}
	x.invalidate()
	if _, err := x.get(func() ([]*criImage, error) { return nil, errors.New("boom") }); err == nil {
		t.Error("a failed listing must fail get")
	}
	x.setWatching(false)
	get()
	get()
	if lists != 8 {
		t.Errorf("after the subscription ended: %d lists, want 8", lists)
	}
}

// TestIntegrationImageIndexFollowsOthers: image records created or deleted by another
// containerd client in our namespace show in ImageStatus and ListImages without a restart.
func TestIntegrationImageIndexFollowsOthers(t *testing.T) {
	e := newTestEnv(t)
	ctx := e.ctx
	e.startRegistry()
	if _, err := e.img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "busybox"}}); err != nil {
		t.Fatalf("PullImage: %v", err)
	}
	names := func() []string {
		list, err := e.img.ListImages(ctx, &runtimeapi.ListImagesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, img := range list.Images {
			out = append(out, img.RepoTags...)
		}
		return out
	}
	eventually := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	eventually("busybox listed", func() bool { return slices.Contains(names(), "docker.io/library/busybox:latest") })

	c, err := containerd.New(e.daemon.Address())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	nsCtx := namespaces.WithNamespace(ctx, e.cfg.Namespace)
	is := c.ImageService()
	img, err := is.Get(nsCtx, "docker.io/library/busybox:latest")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := is.Create(nsCtx, images.Image{Name: "docker.io/library/other:1", Target: img.Target}); err != nil {
		t.Fatal(err)
	}
	eventually("a tag made by another client", func() bool { return slices.Contains(names(), "docker.io/library/other:1") })
	if err := is.Delete(nsCtx, "docker.io/library/other:1"); err != nil {
		t.Fatal(err)
	}
	eventually("a tag removed by another client", func() bool {
		st, err := e.img.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: "other:1"}})
		return err == nil && st.Image == nil
	})
}
