package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/flowcontrol"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/skiff-sh/skiff/volumes"
)

// A pod whose volumes could not be set up is tried again with a per-pod back-off, and
// its FailedMount events come at that pace; the watch on a missing configMap or secret
// wakes it at once when the object appears.
const (
	volumeMountBackoffBase = 2 * time.Second
	volumeMountBackoffMax  = 2 * time.Minute
)

// errVolumeUnsupported marks volume types the node cannot prepare: mounts of them are
// skipped with an event rather than failing the pod.
type errVolumeUnsupported struct{ name, kind string }

func (e errVolumeUnsupported) Error() string {
	return fmt.Sprintf("volume %q: %s volumes are not supported yet", e.name, e.kind)
}

// podVolumes ties the volume manager to the agent: it remembers the host path of each
// prepared volume for the container configs of the same and later syncs, and watches the
// configMaps and secrets the pods use.
type podVolumes struct {
	manager *volumes.Manager
	sources *volumeSources

	backoff *flowcontrol.Backoff

	mu    sync.Mutex
	paths map[types.UID]map[string]string
}

func newPodVolumes(cfg volumes.Config, sources *volumeSources) (*podVolumes, error) {
	m, err := volumes.NewManager(cfg)
	if err != nil {
		return nil, err
	}
	return &podVolumes{
		manager: m,
		sources: sources,
		backoff: flowcontrol.NewBackOff(volumeMountBackoffBase, volumeMountBackoffMax),
		paths:   map[types.UID]map[string]string{},
	}, nil
}

// orphanedVolumesPeriod is how often pod dirs nobody owns are looked for.
const orphanedVolumesPeriod = time.Minute

// runVolumes serves the configMap and secret watches and, once the pod source has synced,
// removes now and then the volumes of pods that went while the agent was down (kubelet's
// cleanupOrphanedPodDirs): no pod bound here, no worker, nothing in the runtime.
func (a *Agent) runVolumes(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { a.vols.sources.run(ctx) })
	if !a.source.waitForSync(ctx) {
		return
	}
	ticker := time.NewTicker(orphanedVolumesPeriod)
	defer ticker.Stop()
	for {
		a.cleanupOrphanedPodDirs(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func (a *Agent) cleanupOrphanedPodDirs(ctx context.Context) {
	logger := klog.FromContext(ctx)
	podsDir := filepath.Join(a.cfg.RootDir, "pods")
	entries, err := os.ReadDir(podsDir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			logger.Error(err, "Listing pod dirs")
		}
		return
	}
	for _, e := range entries {
		uid := types.UID(e.Name())
		if !e.IsDir() || a.source.podByUID(uid) != nil || a.workers.known(uid) {
			continue
		}
		rp, err := a.getRuntimePod(ctx, uid)
		if err != nil || !rp.empty() {
			continue // the PLEG hands runtime orphans to a worker, which cleans up
		}
		if err := a.teardownPodVolumes(ctx, uid); err != nil {
			logger.Error(err, "Removing volumes of an orphaned pod", "podUID", uid)
			continue
		}
		if err := os.RemoveAll(filepath.Join(podsDir, e.Name())); err != nil {
			logger.Error(err, "Removing an orphaned pod dir", "podUID", uid)
			continue
		}
		logger.Info("Removed the dir of an orphaned pod", "podUID", uid)
	}
}

// setupPodVolumes prepares (or refreshes) the pod's volumes before anything of the pod
// starts. ok is false while a volume has never been ready: the pod then waits in
// ContainerCreating with a FailedMount event per volume, as with kubelet, and is tried
// again after retry (or as soon as a watched source changes). A refresh that fails for a
// volume published before keeps the old contents and the pod running.
func (a *Agent) setupPodVolumes(ctx context.Context, pod *v1.Pod, rp *runtimePod) (retry time.Duration, ok bool) {
	v := a.vols
	v.sources.track(ctx, pod)
	paths, err := v.manager.Setup(ctx, pod, v.sources)
	v.mu.Lock()
	v.paths[pod.UID] = paths
	v.mu.Unlock()
	if err == nil {
		v.backoff.Reset(string(pod.UID))
		return 0, true
	}
	var blocked []string
	for _, e := range unjoin(err) {
		var se *volumes.SetupError
		if !errors.As(e, &se) || errors.Is(e, volumes.ErrUnsupported) {
			continue // left to containerMounts, which skips such mounts with an event
		}
		a.recorder.Event(podRef(pod), v1.EventTypeWarning, eventFailedMount, se.Error())
		if _, ready := paths[se.Volume]; !ready {
			blocked = append(blocked, se.Error())
		}
	}
	if len(blocked) == 0 {
		return 0, true
	}
	klog.FromContext(ctx).V(2).Info("Waiting for volumes", "pod", klog.KObj(pod), "err", err)
	a.reportStatus(ctx, pod, rp, blockedWaiting(pod, strings.Join(blocked, "; ")))
	v.backoff.Next(string(pod.UID), v.backoff.Clock.Now())
	return v.backoff.Get(string(pod.UID)), false
}

// teardownPodVolumes unmounts and removes the pod's volumes and stops watching its sources.
func (a *Agent) teardownPodVolumes(ctx context.Context, uid types.UID) error {
	v := a.vols
	v.sources.untrack(uid)
	v.backoff.Reset(string(uid))
	v.mu.Lock()
	delete(v.paths, uid)
	v.mu.Unlock()
	return v.manager.Teardown(ctx, uid)
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// volumeMount resolves one volumeMount (the index-th of container) to a CRI mount, from the
// volumes set up for the pod. A subPath is pinned (volumes.PinSubPath), so that what the
// container does to its volume meanwhile cannot redirect the runtime's mount.
func (a *Agent) volumeMount(ctx context.Context, pod *v1.Pod, container string, index int, vm v1.VolumeMount) (*runtimeapi.Mount, error) {
	var vol *v1.Volume
	for i := range pod.Spec.Volumes {
		if pod.Spec.Volumes[i].Name == vm.Name {
			vol = &pod.Spec.Volumes[i]
		}
	}
	if vol == nil {
		return nil, fmt.Errorf("volumeMount %q: no volume of that name in the pod", vm.Name)
	}
	a.vols.mu.Lock()
	host, ok := a.vols.paths[pod.UID][vm.Name]
	a.vols.mu.Unlock()
	if !ok {
		return nil, errVolumeUnsupported{vm.Name, volumeKind(vol)}
	}
	if vm.SubPath != "" {
		var err error
		if host, err = a.vols.manager.PinSubPath(ctx, pod.UID, vm.Name, container, index, host, vm.SubPath); err != nil {
			return nil, fmt.Errorf("volume %q subPath: %w", vm.Name, err)
		}
	}
	return &runtimeapi.Mount{
		ContainerPath: vm.MountPath,
		HostPath:      host,
		Readonly:      vm.ReadOnly || apiDataVolume(vol),
		Propagation:   mountPropagation(vm.MountPropagation),
	}, nil
}

// apiDataVolume reports volumes the node writes from API objects; containers always get
// them read-only, as from kubelet (its mustMountRO), so they cannot edit what the next
// sync would overwrite.
func apiDataVolume(vol *v1.Volume) bool {
	return vol.ConfigMap != nil || vol.Secret != nil || vol.DownwardAPI != nil || vol.Projected != nil
}

// volumeKind names a volume's source for messages.
func volumeKind(vol *v1.Volume) string {
	switch s := vol.VolumeSource; {
	case s.PersistentVolumeClaim != nil:
		return "persistentVolumeClaim"
	case s.CSI != nil:
		return "csi"
	case s.NFS != nil:
		return "nfs"
	case s.Ephemeral != nil:
		return "ephemeral"
	case s.Image != nil:
		return "image"
	}
	return "this kind of"
}

func mountPropagation(p *v1.MountPropagationMode) runtimeapi.MountPropagation {
	if p == nil {
		return runtimeapi.MountPropagation_PROPAGATION_PRIVATE
	}
	switch *p {
	case v1.MountPropagationHostToContainer:
		return runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
	case v1.MountPropagationBidirectional:
		return runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL
	}
	return runtimeapi.MountPropagation_PROPAGATION_PRIVATE
}

// volumesConfig is the volume manager's view of the agent's config.
func (a *Agent) volumesConfig() volumes.Config {
	return volumes.Config{
		RootDir:     a.cfg.RootDir,
		Recorder:    agentEvents{a},
		Allocatable: a.allocatable,
	}
}

// agentEvents hands volume events to the agent's recorder as it is at the time of the
// event (tests replace it after New).
type agentEvents struct{ a *Agent }

func (e agentEvents) Eventf(obj runtime.Object, eventtype, reason, messageFmt string, args ...any) {
	if pod, ok := obj.(*v1.Pod); ok {
		obj = podRef(pod)
	}
	e.a.recorder.Eventf(obj, eventtype, reason, messageFmt, args...)
}
