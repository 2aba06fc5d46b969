package cri

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/snapshots"
	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestIntegrationImageVolume mounts the busybox image into a container read-only,
// whole and by sub path, and checks that removal leaves no mount or snapshot behind.
func TestIntegrationImageVolume(t *testing.T) {
	e := newTestEnv(t)
	ctx := e.ctx
	e.startRegistry()
	pull, err := e.img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "busybox"}})
	if err != nil {
		t.Fatalf("PullImage: %v", err)
	}
	pod := podConfig("iv", filepath.Join(e.dir, "logs", "iv"))
	pod.PortMappings = nil
	run, err := e.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pod})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	sbID := run.PodSandboxId
	image := func() *runtimeapi.ImageSpec { return &runtimeapi.ImageSpec{Image: "busybox"} }
	config := func(name string, mounts ...*runtimeapi.Mount) *runtimeapi.ContainerConfig {
		return &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: name},
			Image:    image(),
			Command:  []string{"sleep", "3600"},
			Mounts:   mounts,
		}
	}

	// Rejected before anything is mounted or leaked.
	for name, m := range map[string]*runtimeapi.Mount{
		"writable":        {ContainerPath: "/mnt/iv", Image: image()},
		"missing-subpath": {ContainerPath: "/mnt/iv", Readonly: true, Image: image(), ImageSubPath: "not-there"},
	} {
		_, err := e.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sbID, Config: config(name, m), SandboxConfig: pod})
		wantCode(t, err, codes.InvalidArgument, "CreateContainer("+name+")")
	}
	_, err = e.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sbID, SandboxConfig: pod,
		Config: config("unpulled", &runtimeapi.Mount{ContainerPath: "/mnt/iv", Readonly: true, Image: &runtimeapi.ImageSpec{Image: "nothere:1"}})})
	wantCode(t, err, codes.NotFound, "CreateContainer(unpulled image volume)")
	assertNoImageVolumes(t, e)

	id := e.createContainer(sbID, pod, config("c",
		&runtimeapi.Mount{ContainerPath: "/mnt/iv", Readonly: true, Image: image()},
		&runtimeapi.Mount{ContainerPath: "/mnt/etc", Readonly: true, Image: image(), ImageSubPath: "etc"}))
	exec := func(cmd ...string) (*runtimeapi.ExecSyncResponse, error) {
		return e.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: 10})
	}
	for _, cmd := range [][]string{
		{"/mnt/iv/bin/busybox", "true"}, // executable: not noexec
		{"test", "-f", "/mnt/etc/passwd"},
		{"test", "!", "-e", "/mnt/etc/etc"},
		{"sh", "-c", "! touch /mnt/iv/x 2>/dev/null"},
	} {
		if r, err := exec(cmd...); err != nil || r.ExitCode != 0 {
			t.Errorf("exec %q = %v, %v", cmd, r, err)
		}
	}
	st := e.containerStatus(id)
	refs := 0
	for _, m := range st.GetMounts() {
		if m.GetImage().GetImageRef() == pull.ImageRef {
			refs++
		}
	}
	if refs != 2 {
		t.Errorf("ContainerStatus mounts = %v, want both with image_ref %s", st.GetMounts(), pull.ImageRef)
	}
	if _, err := os.Stat(e.srv.svc.imageVolumeDir(id)); err != nil {
		t.Errorf("image volume mount point: %v", err)
	}

	if _, err := e.rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("RemoveContainer: %v", err)
	}
	assertNoImageVolumes(t, e)
	if _, err := e.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sbID}); err != nil {
		t.Fatalf("StopPodSandbox: %v", err)
	}
	if _, err := e.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sbID}); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
}

// assertNoImageVolumes checks that no image volume is mounted, and no snapshot kept.
func assertNoImageVolumes(t *testing.T, e *testEnv) {
	t.Helper()
	s := e.srv.svc
	root := filepath.Join(s.cfg.StateDir, "image-volumes")
	mounts, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mounts), root) {
		t.Errorf("image volumes still mounted under %s", root)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("image volume directories left: %v", entries)
	}
	var left []string
	err = s.client.SnapshotService(s.cfg.Snapshotter).Walk(s.ns(context.Background()), func(_ context.Context, info snapshots.Info) error {
		left = append(left, info.Name)
		return nil
	}, `labels."`+labelImageVolumeOf+`"`)
	if err != nil || len(left) != 0 {
		t.Errorf("image volume snapshots left: %v, %v", left, err)
	}
}
