package volumes

import (
	"fmt"
	"os"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// setupEmptyDir creates the volume's directory under the pod dir; medium Memory mounts a
// tmpfs there, bounded by sizeLimit when one is set.
func (m *Manager) setupEmptyDir(pod *v1.Pod, vol *v1.Volume) (string, error) {
	dir := m.volumeDir(pod, pluginEmptyDir, vol.Name)
	_, statErr := os.Stat(dir)
	created := os.IsNotExist(statErr)
	switch vol.EmptyDir.Medium {
	case v1.StorageMediumDefault:
		if err := mkdirVolume(dir, 0o777); err != nil {
			return "", err
		}
	case v1.StorageMediumMemory:
		if err := m.ensureTmpfs(dir, m.tmpfsOptions(pod, vol.EmptyDir.SizeLimit)); err != nil {
			return "", err
		}
	default:
		return "", fmt.Errorf("emptyDir medium %q is not supported", vol.EmptyDir.Medium)
	}
	// The pod owns what it writes there: the fsGroup is applied once, to the empty dir,
	// not re-applied over the pod's files at every sync.
	if created {
		if err := setOwnership(dir, podFSGroup(pod), false); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// tmpfsOptions sizes a memory-backed volume as kubelet does: no larger than the node's
// allocatable memory, the pod's memory limit (when every container has one) and the
// volume's sizeLimit, whichever is smallest. Without any of them the kernel's default
// (half the RAM) applies.
func (m *Manager) tmpfsOptions(pod *v1.Pod, sizeLimit *resource.Quantity) []string {
	var size int64
	smaller := func(v int64) {
		if v > 0 && (size == 0 || v < size) {
			size = v
		}
	}
	if q, ok := m.cfg.Allocatable()[v1.ResourceMemory]; ok {
		smaller(q.Value())
	}
	smaller(podMemoryLimit(pod))
	if sizeLimit != nil {
		smaller(sizeLimit.Value())
	}
	if size == 0 {
		return nil
	}
	return []string{fmt.Sprintf("size=%d", size)}
}

// podMemoryLimit is the pod cgroup's memory limit: the larger of the app containers' sum
// and the largest init container's, or 0 when some container has no limit.
func podMemoryLimit(pod *v1.Pod) int64 {
	limit := func(c *v1.Container) (int64, bool) {
		q, ok := c.Resources.Limits[v1.ResourceMemory]
		return q.Value(), ok
	}
	var sum int64
	for i := range pod.Spec.Containers {
		l, ok := limit(&pod.Spec.Containers[i])
		if !ok {
			return 0
		}
		sum += l
	}
	for i := range pod.Spec.InitContainers {
		l, ok := limit(&pod.Spec.InitContainers[i])
		if !ok {
			return 0
		}
		sum = max(sum, l)
	}
	return sum
}

// ensureTmpfs mounts a tmpfs on dir unless one is there already. tmpfs's own root mode is
// 1777, what kubelet's memory-backed emptyDir shows.
func (m *Manager) ensureTmpfs(dir string, opts []string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	mounted, err := m.cfg.Mounter.IsMountPoint(dir)
	if err != nil {
		return fmt.Errorf("check mount of %s: %w", dir, err)
	}
	if mounted {
		return nil
	}
	return m.cfg.Mounter.MountTmpfs(dir, opts)
}
