package volumes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

// Plugin directory names under <RootDir>/pods/<uid>/volumes, as kubelet names them.
const (
	pluginEmptyDir    = "kubernetes.io~empty-dir"
	pluginConfigMap   = "kubernetes.io~configmap"
	pluginSecret      = "kubernetes.io~secret"
	pluginDownwardAPI = "kubernetes.io~downward-api"
	pluginProjected   = "kubernetes.io~projected"
)

// ErrUnsupported is the error (inside a *SetupError) of a volume type this node cannot
// prepare, such as persistentVolumeClaim or csi.
var ErrUnsupported = errors.New("volume type not supported by this node")

// Config configures a Manager. RootDir is required.
type Config struct {
	// RootDir is the agent's root dir (kubelet's --root-dir). Volumes of a pod go under
	// <RootDir>/pods/<uid>/volumes/<plugin>/<name>.
	RootDir string
	// Recorder receives the Warning events of volumes that are skipped rather than failed
	// (a serviceAccountToken projection). Optional; a record.EventRecorder fits.
	Recorder EventRecorder
	// Allocatable returns the node's allocatable resources, the value a downwardAPI
	// resourceFieldRef shows for a limit the container does not set. Optional.
	Allocatable func() v1.ResourceList
	// Mounter mounts and unmounts tmpfs. Default: the mount(2) system call.
	Mounter Mounter
}

// EventRecorder is the part of client-go's record.EventRecorder the Manager uses.
type EventRecorder interface {
	Eventf(object runtime.Object, eventtype, reason, messageFmt string, args ...any)
}

// Sources gives the objects volumes project. Errors for which apierrors.IsNotFound is
// true mean the object does not exist (fine for optional sources).
type Sources interface {
	ConfigMap(ctx context.Context, namespace, name string) (*v1.ConfigMap, error)
	Secret(ctx context.Context, namespace, name string) (*v1.Secret, error)
}

// Manager sets up and tears down the volumes of pods. It keeps no state in memory: what
// is on disk (and in the mount table) is the state, so an agent restart loses nothing.
type Manager struct {
	cfg Config
}

// NewManager validates cfg and returns a Manager.
func NewManager(cfg Config) (*Manager, error) {
	if cfg.RootDir == "" {
		return nil, errors.New("volumes: RootDir is required")
	}
	if !filepath.IsAbs(cfg.RootDir) {
		return nil, fmt.Errorf("volumes: RootDir %q must be absolute", cfg.RootDir)
	}
	if cfg.Mounter == nil {
		cfg.Mounter = sysMounter{}
	}
	if cfg.Allocatable == nil {
		cfg.Allocatable = func() v1.ResourceList { return nil }
	}
	return &Manager{cfg: cfg}, nil
}

// SetupError is the failure of one volume. Its message is kubelet's FailedMount event text.
type SetupError struct {
	Volume string
	Err    error
}

func (e *SetupError) Error() string {
	return fmt.Sprintf("MountVolume.SetUp failed for volume %q : %v", e.Volume, e.Err)
}

func (e *SetupError) Unwrap() error { return e.Err }

// Setup makes every volume of pod ready and returns the host path of each by volume name.
// It is idempotent and cheap when nothing changed; calling it again refreshes configMap,
// secret, downwardAPI and projected contents. Failures are *SetupError values joined with
// errors.Join; the other volumes are set up all the same. A volume whose refresh fails
// but that was published before (by this or an earlier agent process) keeps its files
// and its path stays in the map, so a running pod is not cut off from them; a failed
// volume absent from the map has never been ready.
func (m *Manager) Setup(ctx context.Context, pod *v1.Pod, src Sources) (map[string]string, error) {
	paths := make(map[string]string, len(pod.Spec.Volumes))
	var errs []error
	for i := range pod.Spec.Volumes {
		vol := &pod.Spec.Volumes[i]
		path, err := m.setupVolume(ctx, pod, vol, src)
		if err != nil {
			errs = append(errs, &SetupError{Volume: vol.Name, Err: err})
			if prev, ok := m.publishedPath(pod, vol); ok {
				paths[vol.Name] = prev
			}
			continue
		}
		paths[vol.Name] = path
	}
	return paths, errors.Join(errs...)
}

// publishedPath returns the directory of an AtomicWriter volume that holds a published
// generation.
func (m *Manager) publishedPath(pod *v1.Pod, vol *v1.Volume) (string, bool) {
	var plugin string
	switch {
	case vol.ConfigMap != nil:
		plugin = pluginConfigMap
	case vol.Secret != nil:
		plugin = pluginSecret
	case vol.DownwardAPI != nil:
		plugin = pluginDownwardAPI
	case vol.Projected != nil:
		plugin = pluginProjected
	default:
		return "", false
	}
	dir := m.volumeDir(pod, plugin, vol.Name)
	if _, err := os.Stat(filepath.Join(dir, dataDirName)); err != nil {
		return "", false
	}
	return dir, true
}

func (m *Manager) setupVolume(ctx context.Context, pod *v1.Pod, vol *v1.Volume, src Sources) (string, error) {
	switch {
	case vol.EmptyDir != nil:
		return m.setupEmptyDir(pod, vol)
	case vol.HostPath != nil:
		return setupHostPath(vol.HostPath)
	case vol.ConfigMap != nil:
		return m.setupConfigMap(ctx, pod, vol, src)
	case vol.Secret != nil:
		return m.setupSecret(ctx, pod, vol, src)
	case vol.DownwardAPI != nil:
		return m.setupDownwardAPI(pod, vol)
	case vol.Projected != nil:
		return m.setupProjected(ctx, pod, vol, src)
	}
	return "", ErrUnsupported
}

// Teardown unmounts and removes every volume of the pod; it is safe to call again and
// for pods it never saw (after an agent restart the mount table is the record).
func (m *Manager) Teardown(ctx context.Context, podUID types.UID) error {
	// The subPath pins first: they are bind mounts of paths inside the volumes (or of a
	// hostPath), so their directory is removed without ever descending into one.
	subPaths := m.podSubPathsDir(podUID)
	if err := m.unmountUnder(ctx, podUID, subPaths); err != nil {
		return err
	}
	if err := removePinTargets(subPaths); err != nil {
		return fmt.Errorf("remove subPath pins of pod %s: %w", podUID, err)
	}
	dir := m.podVolumesDir(podUID)
	if err := m.unmountUnder(ctx, podUID, dir); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove volumes of pod %s: %w", podUID, err)
	}
	return nil
}

// unmountUnder unmounts every mount at or below dir, deepest first, and checks none is left.
func (m *Manager) unmountUnder(ctx context.Context, podUID types.UID, dir string) error {
	mounts, err := m.cfg.Mounter.MountPointsUnder(dir)
	if err != nil {
		return fmt.Errorf("list mounts of pod %s: %w", podUID, err)
	}
	// Deepest first, so nested mounts go before their parents.
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	for _, mp := range mounts {
		if err := m.cfg.Mounter.Unmount(mp); err != nil {
			return fmt.Errorf("unmount %s: %w", mp, err)
		}
		klog.FromContext(ctx).V(4).Info("Unmounted volume", "podUID", podUID, "path", mp)
	}
	if left, err := m.cfg.Mounter.MountPointsUnder(dir); err != nil || len(left) > 0 {
		return fmt.Errorf("mounts of pod %s left under %s after unmounting: %v %w", podUID, dir, left, err)
	}
	return nil
}

// podSubPathsDir holds the pod's pinned subPaths (PinSubPath):
// <volume>/<container>/<index>, each an empty directory or file once unmounted.
func (m *Manager) podSubPathsDir(uid types.UID) string {
	return filepath.Join(m.cfg.RootDir, "pods", string(uid), "volume-subpaths")
}

// removePinTargets removes the pins' mount points and their directories, each with a
// plain remove: a pin still mounted by mistake makes it fail rather than empty the
// volume behind it.
func removePinTargets(dir string) error {
	volumes, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, vol := range volumes {
		volDir := filepath.Join(dir, vol.Name())
		containers, _ := os.ReadDir(volDir)
		for _, c := range containers {
			cDir := filepath.Join(volDir, c.Name())
			pins, _ := os.ReadDir(cDir)
			for _, pin := range pins {
				if err := os.Remove(filepath.Join(cDir, pin.Name())); err != nil {
					return err
				}
			}
			if err := os.Remove(cDir); err != nil {
				return err
			}
		}
		if err := os.Remove(volDir); err != nil {
			return err
		}
	}
	return os.Remove(dir)
}

// podVolumesDir is where the volumes of the pod with this UID live.
func (m *Manager) podVolumesDir(uid types.UID) string {
	return filepath.Join(m.cfg.RootDir, "pods", string(uid), "volumes")
}

func (m *Manager) volumeDir(pod *v1.Pod, plugin, name string) string {
	return filepath.Join(m.podVolumesDir(pod.UID), plugin, name)
}

// mkdirVolume creates a volume's directory. Containers may run as any user, so it is
// world-writable like kubelet's emptyDir (the umask is undone by the chmod).
func mkdirVolume(dir string, perm os.FileMode) error {
	if err := os.MkdirAll(dir, perm); err != nil {
		return err
	}
	return os.Chmod(dir, perm)
}

// isWithin reports whether path is dir or below it.
func isWithin(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+string(filepath.Separator))
}
