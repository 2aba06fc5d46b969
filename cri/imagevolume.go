package cri

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/image-spec/identity"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// Image volumes (CRI Mount.image, KEP-4639): the image's unpacked root filesystem,
// mounted read-only. Each one is a view snapshot of the image's chain ID, mounted on
// the host under StateDir/image-volumes/<container>/<n> and bind-mounted (with its
// sub path) into the container. The snapshot carries a GC root label, because
// nothing else in containerd's metadata references it; removeImageVolumes, called
// when the container is removed or its creation fails, drops both.
const (
	labelImageVolumeOf = "sh.skiff.cri/image-volume-of"
	// labelRootfsOf names the container a rootfs snapshot was prepared for.
	labelRootfsOf = "sh.skiff.cri/rootfs-of"
	labelGCRoot   = "containerd.io/gc.root"
)

func (s *service) imageVolumeDir(containerID string) string {
	return filepath.Join(s.cfg.StateDir, "image-volumes", containerID)
}

func imageVolumeKey(containerID string, n int) string {
	return containerID + "-image-volume-" + strconv.Itoa(n)
}

// isImageMount tells an image volume from a host path mount.
func isImageMount(m *runtimeapi.Mount) bool {
	return m.GetImage().GetImage() != ""
}

// validateImageMount checks what can be checked before anything is mounted.
func validateImageMount(m *runtimeapi.Mount) error {
	if !filepath.IsAbs(m.GetContainerPath()) {
		return fmt.Errorf("image volume %q: container path %q is not absolute: %w",
			m.GetImage().GetImage(), m.GetContainerPath(), errdefs.ErrInvalidArgument)
	}
	// Image volumes are read-only by definition; a writable one is a caller error
	// (the kubelet always asks for read-only).
	if !m.GetReadonly() {
		return fmt.Errorf("image volume %q at %q must be read-only: %w",
			m.GetImage().GetImage(), m.GetContainerPath(), errdefs.ErrInvalidArgument)
	}
	if sub := m.GetImageSubPath(); sub != "" {
		if filepath.IsAbs(sub) || sub != filepath.Clean(sub) || sub == ".." || strings.HasPrefix(sub, "../") {
			return fmt.Errorf("image volume %q: sub path %q must be a clean relative path inside the image: %w",
				m.GetImage().GetImage(), sub, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// prepareImageVolumes mounts the config's image volumes on the host and returns the
// container's bind mounts. It records each image's ID in the mount's ImageSpec
// (image_ref), which ContainerStatus reports back.
func (s *service) prepareImageVolumes(ctx context.Context, containerID string, cfg *runtimeapi.ContainerConfig) ([]specs.Mount, error) {
	var out []specs.Mount
	for n, m := range cfg.GetMounts() {
		if !isImageMount(m) {
			continue
		}
		if err := validateImageMount(m); err != nil {
			return nil, err
		}
		ci, err := s.findImage(ctx, m.GetImage().GetImage())
		if err != nil {
			return nil, fmt.Errorf("image volume %q: %w", m.GetImage().GetImage(), err)
		}
		host, err := s.mountImageVolume(ctx, containerID, n, ci.names[0])
		if err != nil {
			return nil, fmt.Errorf("image volume %q: %w", m.GetImage().GetImage(), err)
		}
		src, err := imageSubPath(host, m.GetImageSubPath())
		if err != nil {
			return nil, fmt.Errorf("image volume %q: %w", m.GetImage().GetImage(), err)
		}
		m.Image.ImageRef = ci.info.id
		out = append(out, specs.Mount{Destination: m.GetContainerPath(), Source: src, Type: "bind",
			Options: []string{"rbind", propagationOption(m.GetPropagation()), "ro"}})
	}
	return out, nil
}

// mountImageVolume creates the n-th view snapshot of the image and mounts it on the host.
func (s *service) mountImageVolume(ctx context.Context, containerID string, n int, imageName string) (string, error) {
	img, err := s.client.GetImage(ctx, imageName)
	if err != nil {
		return "", fmt.Errorf("load image: %w", err)
	}
	unpacked, err := img.IsUnpacked(ctx, s.cfg.Snapshotter)
	if err != nil {
		return "", fmt.Errorf("check unpacked: %w", err)
	}
	if !unpacked {
		if err := img.Unpack(ctx, s.cfg.Snapshotter); err != nil {
			return "", fmt.Errorf("unpack: %w", err)
		}
	}
	diffIDs, err := img.RootFS(ctx)
	if err != nil {
		return "", fmt.Errorf("read rootfs: %w", err)
	}
	mounts, err := s.client.SnapshotService(s.cfg.Snapshotter).View(ctx, imageVolumeKey(containerID, n),
		identity.ChainID(diffIDs).String(), snapshots.WithLabels(map[string]string{
			labelImageVolumeOf: containerID,
			labelGCRoot:        time.Now().UTC().Format(time.RFC3339),
		}))
	if err != nil {
		return "", fmt.Errorf("create view snapshot: %w", err)
	}
	target := filepath.Join(s.imageVolumeDir(containerID), strconv.Itoa(n))
	if err := os.MkdirAll(target, 0o700); err != nil {
		return "", fmt.Errorf("create mount point: %w", err)
	}
	if err := mount.All(mounts, target); err != nil {
		return "", fmt.Errorf("mount view snapshot: %w", err)
	}
	return target, nil
}

// imageSubPath resolves a sub path of a mounted image; it must exist and stay inside.
func imageSubPath(root, sub string) (string, error) {
	if sub == "" {
		return root, nil
	}
	root, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", fmt.Errorf("resolve image volume root: %w", err)
	}
	resolved, err := filepath.EvalSymlinks(filepath.Join(root, sub))
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("sub path %q does not exist in the image: %w", sub, errdefs.ErrInvalidArgument)
	}
	if err != nil {
		return "", fmt.Errorf("resolve sub path %q: %w", sub, err)
	}
	// A symlink in the image must not lead the mount out of the image (an absolute
	// link target resolves against the host here).
	if resolved != root && !strings.HasPrefix(resolved, root+string(filepath.Separator)) {
		return "", fmt.Errorf("sub path %q leaves the image: %w", sub, errdefs.ErrInvalidArgument)
	}
	return resolved, nil
}

// removeImageVolumes unmounts and deletes a container's image volumes. It is
// idempotent and cheap for containers without any.
func (s *service) removeImageVolumes(ctx context.Context, containerID string) error {
	dir := s.imageVolumeDir(containerID)
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("list image volumes: %w", err)
	}
	for _, e := range entries {
		target := filepath.Join(dir, e.Name())
		if err := mount.UnmountAll(target, syscall.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount image volume %s: %w", target, err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove image volume mount points: %w", err)
	}
	sn := s.client.SnapshotService(s.cfg.Snapshotter)
	var keys []string
	err = sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		keys = append(keys, info.Name)
		return nil
	}, fmt.Sprintf(`labels."%s"==%q`, labelImageVolumeOf, containerID))
	if err != nil {
		return fmt.Errorf("list image volume snapshots: %w", err)
	}
	for _, key := range keys {
		if err := sn.Remove(ctx, key); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("remove image volume snapshot %s: %w", key, err)
		}
	}
	if len(keys) > 0 {
		klog.FromContext(ctx).V(4).Info("Removed image volumes", "containerID", containerID, "count", len(keys))
	}
	return nil
}
