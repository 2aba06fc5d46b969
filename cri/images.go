package cri

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/remotes/docker/config"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// imageInfo is what CRI reports about an image, derived from its content.
type imageInfo struct {
	id      string // config digest: the CRI image ID
	size    int64
	config  ocispec.ImageConfig
	chainID string // of the unpacked layers: the parent snapshot of a container's rootfs
}

// imageCache memoizes imageInfo by target digest; content behind a digest never changes.
// It also holds the pulls in flight.
type imageCache struct {
	mu    sync.Mutex
	infos map[digest.Digest]*imageInfo
	pulls *pullTracker
	index imageIndex
}

func newImageCache() *imageCache {
	return &imageCache{infos: map[digest.Digest]*imageInfo{}, pulls: newPullTracker()}
}

// criImage groups the containerd image records (names) sharing one CRI image ID.
type criImage struct {
	info   *imageInfo
	names  []string
	pinned bool
	target ocispec.Descriptor
	// Worked out once when the index is read, since status calls ask for them each time;
	// shared, so never modified.
	tags, digests []string
	cri           *runtimeapi.Image
}

func (s *service) imageInfo(ctx context.Context, img images.Image) (*imageInfo, error) {
	s.images.mu.Lock()
	info, ok := s.images.infos[img.Target.Digest]
	s.images.mu.Unlock()
	if ok {
		return info, nil
	}
	cs := s.client.ContentStore()
	platform := platforms.Default()
	configDesc, err := img.Config(ctx, cs, platform)
	if err != nil {
		return nil, fmt.Errorf("image %s config: %w", img.Name, err)
	}
	raw, err := content.ReadBlob(ctx, cs, configDesc)
	if err != nil {
		return nil, fmt.Errorf("read image %s config: %w", img.Name, err)
	}
	var ociImage ocispec.Image
	if err := json.Unmarshal(raw, &ociImage); err != nil {
		return nil, fmt.Errorf("decode image %s config: %w", img.Name, err)
	}
	size, err := img.Size(ctx, cs, platform)
	if err != nil {
		return nil, fmt.Errorf("image %s size: %w", img.Name, err)
	}
	info = &imageInfo{id: configDesc.Digest.String(), size: size, config: ociImage.Config,
		chainID: identity.ChainID(ociImage.RootFS.DiffIDs).String()}
	s.images.mu.Lock()
	s.images.infos[img.Target.Digest] = info
	s.images.mu.Unlock()
	return info, nil
}

// listImages reads every image record of the namespace and groups them by image ID.
// Records whose content is incomplete are skipped.
func (s *service) listImages(ctx context.Context) ([]*criImage, error) {
	return s.images.index.get(func() ([]*criImage, error) { return s.readImages(ctx) })
}

// reloadImages lists the images again after a change, so that the next status call finds
// the index warm; the change's own caller (a pull, a removal) pays for the listing.
func (s *service) reloadImages(ctx context.Context) {
	s.images.index.invalidate()
	if _, err := s.listImages(context.WithoutCancel(ctx)); err != nil {
		klog.FromContext(ctx).V(4).Info("Reload image index", "err", err)
	}
}

// readImages is listImages without the index.
func (s *service) readImages(ctx context.Context) ([]*criImage, error) {
	records, err := s.client.ImageService().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	byID := map[string]*criImage{}
	var out []*criImage
	for _, rec := range records {
		info, err := s.imageInfo(ctx, rec)
		if err != nil {
			klog.FromContext(ctx).V(4).Info("Skipping image without usable content", "image", rec.Name, "err", err)
			continue
		}
		ci, ok := byID[info.id]
		if !ok {
			ci = &criImage{info: info, target: rec.Target}
			byID[info.id] = ci
			out = append(out, ci)
		}
		ci.names = append(ci.names, rec.Name)
		if rec.Labels[labelPinned] != "" {
			ci.pinned = true
		}
	}
	for _, ci := range out {
		sort.Strings(ci.names)
		ci.tags, ci.digests = ci.splitRefs()
		ci.cri = ci.buildCRI()
	}
	return out, nil
}

// findImage resolves a CRI image reference (name, name@digest, or image ID) to a
// local image; it returns errdefs.ErrNotFound if none matches.
func (s *service) findImage(ctx context.Context, ref string) (*criImage, error) {
	all, err := s.listImages(ctx)
	if err != nil {
		return nil, err
	}
	if id, ok := asImageID(ref); ok {
		for _, ci := range all {
			if ci.info.id == id {
				return ci, nil
			}
		}
		return nil, fmt.Errorf("image %q: %w", ref, errdefs.ErrNotFound)
	}
	named, err := normalizeImageRef(ref)
	if err != nil {
		return nil, err
	}
	for _, ci := range all {
		for _, n := range ci.names {
			if n == named.String() {
				return ci, nil
			}
		}
	}
	return nil, fmt.Errorf("image %q: %w", ref, errdefs.ErrNotFound)
}

// asImageID recognizes "sha256:<hex>" and bare 64-hex image IDs.
func asImageID(ref string) (string, bool) {
	hex := strings.TrimPrefix(ref, "sha256:")
	if len(hex) != 64 || strings.Trim(hex, "0123456789abcdef") != "" {
		return "", false
	}
	return "sha256:" + hex, true
}

// normalizeImageRef turns "nginx" into "docker.io/library/nginx:latest".
func normalizeImageRef(ref string) (reference.Named, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return nil, fmt.Errorf("invalid image reference %q: %v: %w", ref, err, errdefs.ErrInvalidArgument)
	}
	return named, nil
}

// toCRI is the image as CRI reports it. The message is shared: callers must not modify it.
func (ci *criImage) toCRI() *runtimeapi.Image { return ci.cri }

// refs are the image's repo tags and repo digests.
func (ci *criImage) refs() (tags, digests []string) { return ci.tags, ci.digests }

func (ci *criImage) buildCRI() *runtimeapi.Image {
	img := &runtimeapi.Image{
		Id:     ci.info.id,
		Size:   uint64(ci.info.size),
		Spec:   &runtimeapi.ImageSpec{Image: ci.info.id},
		Pinned: ci.pinned,
	}
	img.RepoTags, img.RepoDigests = ci.tags, ci.digests
	uid, name := imageUser(ci.info.config.User)
	if uid != nil {
		img.Uid = &runtimeapi.Int64Value{Value: *uid}
	}
	img.Username = name
	return img
}

// splitRefs splits the image's names into repo tags and repo digests.
func (ci *criImage) splitRefs() (tags, digests []string) {
	for _, n := range ci.names {
		if _, isID := asImageID(n); isID {
			continue
		}
		named, err := reference.ParseNormalizedNamed(n)
		if err != nil {
			continue
		}
		if _, ok := named.(reference.Canonical); ok {
			digests = append(digests, n)
		} else if _, ok := named.(reference.Tagged); ok {
			tags = append(tags, n)
		}
	}
	return tags, digests
}

// imageUser splits an image config's user into a numeric UID or a user name.
func imageUser(user string) (*int64, string) {
	user, _, _ = strings.Cut(user, ":")
	if user == "" {
		return nil, ""
	}
	uid, err := strconv.ParseInt(user, 10, 64)
	if err != nil {
		return nil, user
	}
	return &uid, ""
}

// PullImage pulls through the resolver configured from RegistryConfigDir and unpacks
// into the snapshotter. Concurrent pulls of one image share one pull (pull_progress.go),
// which verbose ImageStatus reports while it runs.
func (s *service) PullImage(ctx context.Context, req *runtimeapi.PullImageRequest) (*runtimeapi.PullImageResponse, error) {
	ctx = s.ns(ctx)
	named, err := normalizeImageRef(req.GetImage().GetImage())
	if err != nil {
		return nil, err
	}
	start := time.Now()
	// The pull outlives a caller that gives up while others wait; the server's lifetime
	// bounds it, and it logs with the caller's logger.
	base := klog.NewContext(s.ns(s.lifetime), klog.FromContext(ctx))
	id, err := s.images.pulls.do(ctx, base, named.String(), func(ctx context.Context, progress *pullProgress) (string, error) {
		return s.pullImage(ctx, named, req.GetAuth(), progress)
	})
	if err != nil {
		return nil, err
	}
	klog.FromContext(ctx).V(2).Info("Pulled image", "image", named.String(), "id", id, "duration", time.Since(start))
	return &runtimeapi.PullImageResponse{ImageRef: id}, nil
}

// pullImage does one pull under a lease of its own and returns the image ID.
func (s *service) pullImage(ctx context.Context, named reference.Named, auth *runtimeapi.AuthConfig, progress *pullProgress) (id string, err error) {
	ref := named.String()
	ctx, release, err := s.withPullLease(ctx)
	if err != nil {
		return "", err
	}
	defer func() { release(err != nil) }()
	defer s.reloadImages(ctx)
	img, err := s.client.Pull(ctx, ref,
		containerd.WithResolver(s.resolver(ctx, auth, progress)),
		containerd.WithPullUnpack,
		containerd.WithPullSnapshotter(s.cfg.Snapshotter),
		containerd.WithPullLabel(labelManaged, "true"),
		containerd.WithImageHandlerWrapper(progress.track))
	if err != nil {
		return "", fmt.Errorf("pull image %q: %w", ref, err)
	}
	// Record the repo digest as a name too, so the image answers to name@digest.
	if _, digested := named.(reference.Digested); !digested {
		byDigest := images.Image{
			Name:   named.Name() + "@" + img.Target().Digest.String(),
			Target: img.Target(),
			Labels: map[string]string{labelManaged: "true"},
		}
		// The index is reloaded once, when the pull returns.
		if err := s.writeImageRecord(ctx, byDigest); err != nil {
			return "", fmt.Errorf("record repo digest of %q: %w", ref, err)
		}
	}
	info, err := s.imageInfo(ctx, img.Metadata())
	if err != nil {
		return "", err
	}
	return info.id, nil
}

// resolver builds a registry resolver with per-host configuration from
// RegistryConfigDir (hosts.toml files) and the request's credentials.
func (s *service) resolver(ctx context.Context, auth *runtimeapi.AuthConfig, progress *pullProgress) remotes.Resolver {
	opts := config.HostOptions{Credentials: credentialsFor(auth), UpdateClient: progress.countBlobs}
	if s.cfg.RegistryConfigDir != "" {
		opts.HostDir = config.HostDirFromRoot(s.cfg.RegistryConfigDir)
	}
	return docker.NewResolver(docker.ResolverOptions{Hosts: config.ConfigureHosts(ctx, opts)})
}

// credentialsFor returns the CRI auth for the registry it names (or for every host
// when it names none).
func credentialsFor(auth *runtimeapi.AuthConfig) func(string) (string, string, error) {
	return func(host string) (string, string, error) {
		if auth == nil {
			return "", "", nil
		}
		if addr := auth.GetServerAddress(); addr != "" && registryHost(addr) != host {
			return "", "", nil
		}
		switch {
		case auth.GetIdentityToken() != "":
			return "", auth.GetIdentityToken(), nil
		case auth.GetUsername() != "":
			return auth.GetUsername(), auth.GetPassword(), nil
		case auth.GetAuth() != "":
			decoded, err := base64.StdEncoding.DecodeString(auth.GetAuth())
			if err != nil {
				return "", "", fmt.Errorf("decode auth: %w", err)
			}
			user, pass, ok := strings.Cut(string(decoded), ":")
			if !ok {
				return "", "", errors.New("auth is not base64(user:password)")
			}
			return user, pass, nil
		}
		return "", "", nil
	}
}

func registryHost(addr string) string {
	if u, err := url.Parse(addr); err == nil && u.Host != "" {
		addr = u.Host
	}
	if addr == "index.docker.io" || addr == "docker.io" {
		return "registry-1.docker.io"
	}
	return addr
}

// ImageStatus reports a local image; an unknown image is an empty answer, not an error.
// Verbose, it also reports a pull of the image in flight as info["pullProgress"].
func (s *service) ImageStatus(ctx context.Context, req *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	ctx = s.ns(ctx)
	ci, err := s.findImage(ctx, req.GetImage().GetImage())
	if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return nil, err
	}
	resp := &runtimeapi.ImageStatusResponse{}
	if ci != nil {
		resp.Image = ci.toCRI()
	}
	if !req.GetVerbose() {
		return resp, nil
	}
	if ci != nil {
		info, _ := json.Marshal(map[string]any{"imageConfig": ci.info.config, "names": ci.names})
		resp.Info = map[string]string{"info": string(info)}
	}
	if progress, ok := s.pullProgressJSON(ctx, req.GetImage().GetImage()); ok {
		if resp.Info == nil {
			resp.Info = map[string]string{}
		}
		resp.Info[infoPullProgress] = progress
	}
	return resp, nil
}

// ListImages lists local images, optionally only the one the filter names.
func (s *service) ListImages(ctx context.Context, req *runtimeapi.ListImagesRequest) (*runtimeapi.ListImagesResponse, error) {
	ctx = s.ns(ctx)
	if ref := req.GetFilter().GetImage().GetImage(); ref != "" {
		ci, err := s.findImage(ctx, ref)
		if errors.Is(err, errdefs.ErrNotFound) {
			return &runtimeapi.ListImagesResponse{}, nil
		}
		if err != nil {
			return nil, err
		}
		return &runtimeapi.ListImagesResponse{Images: []*runtimeapi.Image{ci.toCRI()}}, nil
	}
	all, err := s.listImages(ctx)
	if err != nil {
		return nil, err
	}
	resp := &runtimeapi.ListImagesResponse{}
	for _, ci := range all {
		resp.Images = append(resp.Images, ci.toCRI())
	}
	return resp, nil
}

// RemoveImage deletes every name of an image. Unknown images are not an error; the
// pinned pause image is refused because every sandbox needs it.
func (s *service) RemoveImage(ctx context.Context, req *runtimeapi.RemoveImageRequest) (*runtimeapi.RemoveImageResponse, error) {
	ctx = s.ns(ctx)
	ci, err := s.findImage(ctx, req.GetImage().GetImage())
	if errors.Is(err, errdefs.ErrNotFound) {
		return &runtimeapi.RemoveImageResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if ci.pinned {
		return nil, fmt.Errorf("image %s (%s) is pinned by the runtime: %w", ci.info.id, strings.Join(ci.names, ", "),
			errdefs.ErrFailedPrecondition)
	}
	defer s.reloadImages(ctx)
	is := s.client.ImageService()
	for i, name := range ci.names {
		var opts []images.DeleteOpt
		if i == len(ci.names)-1 {
			// Let containerd's GC reclaim content and snapshots before we answer.
			opts = append(opts, images.SynchronousDelete())
		}
		if err := is.Delete(ctx, name, opts...); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			return nil, fmt.Errorf("delete image %s: %w", name, err)
		}
	}
	s.images.mu.Lock()
	delete(s.images.infos, ci.target.Digest)
	s.images.mu.Unlock()
	return &runtimeapi.RemoveImageResponse{}, nil
}

// ImageFsInfo reports the snapshotter's usage.
func (s *service) ImageFsInfo(ctx context.Context, _ *runtimeapi.ImageFsInfoRequest) (*runtimeapi.ImageFsInfoResponse, error) {
	ctx = s.ns(ctx)
	sn := s.client.SnapshotService(s.cfg.Snapshotter)
	var used, inodes uint64
	err := sn.Walk(ctx, func(ctx context.Context, info snapshots.Info) error {
		u, err := sn.Usage(ctx, info.Name)
		if err != nil {
			return nil // removed while walking
		}
		used += uint64(u.Size)
		inodes += uint64(u.Inodes)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot usage: %w", err)
	}
	fs := &runtimeapi.FilesystemUsage{
		Timestamp:  time.Now().UnixNano(),
		FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: s.snapshotterRoot(ctx)},
		UsedBytes:  &runtimeapi.UInt64Value{Value: used},
		InodesUsed: &runtimeapi.UInt64Value{Value: inodes},
	}
	return &runtimeapi.ImageFsInfoResponse{ImageFilesystems: []*runtimeapi.FilesystemUsage{fs}}, nil
}

// snapshotterRoot asks containerd where the snapshotter keeps its data.
func (s *service) snapshotterRoot(ctx context.Context) string {
	resp, err := s.client.IntrospectionService().Plugins(ctx,
		fmt.Sprintf("type==io.containerd.snapshotter.v1,id==%s", s.cfg.Snapshotter))
	if err != nil || len(resp.Plugins) == 0 {
		return ""
	}
	return resp.Plugins[0].Exports["root"]
}

// withRootfsSnapshot prepares a container's rootfs snapshot on an image's layers, like
// containerd.WithNewSnapshot, from the chain ID the image index already knows rather than
// from the image's manifest and config read again from the content store. It is for a
// record created without the containerd client's temporary lease (newContainerRecord):
// the snapshot is kept from containerd's garbage collector by a gc.root label, which
// stays (the container's removal deletes the snapshot explicitly), and labelled with its
// container so that one a crash left without its record is found (removeOrphanRootfs).
func (s *service) withRootfsSnapshot(key string, ci *criImage) containerd.NewContainerOpts {
	return func(ctx context.Context, client *containerd.Client, c *containers.Container) error {
		labels := snapshots.WithLabels(map[string]string{labelGCRoot: "rootfs", labelRootfsOf: key})
		if _, err := client.SnapshotService(s.cfg.Snapshotter).Prepare(ctx, key, ci.info.chainID, labels); err != nil {
			return fmt.Errorf("prepare rootfs snapshot on image %s: %w", ci.names[0], err)
		}
		c.Snapshotter, c.SnapshotKey = s.cfg.Snapshotter, key
		return nil
	}
}

// removeOrphanRootfs removes the rootfs snapshots (withRootfsSnapshot) whose container
// does not exist: a CreateContainer cut short between the snapshot and the record.
func (s *service) removeOrphanRootfs(ctx context.Context) error {
	sn := s.client.SnapshotService(s.cfg.Snapshotter)
	var orphans []string
	err := sn.Walk(ctx, func(ctx context.Context, info snapshots.Info) error {
		if _, err := s.client.ContainerService().Get(ctx, info.Labels[labelRootfsOf]); errdefs.IsNotFound(err) {
			orphans = append(orphans, info.Name)
		}
		return nil
	}, fmt.Sprintf(`labels."%s"`, labelRootfsOf))
	if err != nil {
		return fmt.Errorf("list rootfs snapshots: %w", err)
	}
	var errs []error
	for _, key := range orphans {
		if err := sn.Remove(ctx, key); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove orphan rootfs snapshot %s: %w", key, err))
		}
	}
	return errors.Join(errs...)
}

// newContainerRecord creates a containerd container from opts without the temporary
// lease containerd.Client.NewContainer takes around them, which costs two writes of
// containerd's database and a garbage collection; what the lease protects, the
// snapshot, withRootfsSnapshot protects with a label instead. If the record cannot be
// created, the snapshot an option prepared is removed.
func (s *service) newContainerRecord(ctx context.Context, id string, opts ...containerd.NewContainerOpts) (retErr error) {
	rec := containers.Container{ID: id}
	defer func() {
		if retErr != nil && rec.SnapshotKey != "" {
			_ = s.client.SnapshotService(rec.Snapshotter).Remove(context.WithoutCancel(ctx), rec.SnapshotKey)
		}
	}()
	for _, o := range opts {
		if err := o(ctx, s.client, &rec); err != nil {
			return err
		}
	}
	_, err := s.client.ContainerService().Create(ctx, rec)
	return err
}

// imageObject is the containerd client's view of an image from the index, without asking
// containerd for the record again.
func (s *service) imageObject(ci *criImage) containerd.Image {
	return containerd.NewImage(s.client, images.Image{Name: ci.names[0], Target: ci.target})
}
