package agent

import (
	"fmt"
	"os"
	"path/filepath"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// errVolumeUnsupported marks volume types the agent cannot prepare yet.
type errVolumeUnsupported struct{ name, kind string }

func (e errVolumeUnsupported) Error() string {
	return fmt.Sprintf("volume %q: %s volumes are not supported yet", e.name, e.kind)
}

// volumeMount resolves one volumeMount to a CRI mount, preparing the volume on first use.
func (a *Agent) volumeMount(pod *v1.Pod, vm v1.VolumeMount) (*runtimeapi.Mount, error) {
	var vol *v1.Volume
	for i := range pod.Spec.Volumes {
		if pod.Spec.Volumes[i].Name == vm.Name {
			vol = &pod.Spec.Volumes[i]
		}
	}
	if vol == nil {
		return nil, fmt.Errorf("volumeMount %q: no volume of that name in the pod", vm.Name)
	}
	host, err := a.volumeHostPath(pod, vol)
	if err != nil {
		return nil, err
	}
	if vm.SubPath != "" {
		host = filepath.Join(host, filepath.Clean("/"+vm.SubPath))
		if err := os.MkdirAll(host, 0o750); err != nil {
			return nil, fmt.Errorf("volume %q subPath: %w", vm.Name, err)
		}
	}
	return &runtimeapi.Mount{
		ContainerPath: vm.MountPath,
		HostPath:      host,
		Readonly:      vm.ReadOnly,
		Propagation:   mountPropagation(vm.MountPropagation),
	}, nil
}

// volumeHostPath returns the host directory backing a volume. emptyDir lives under the pod
// dir in kubelet's layout (memory-backed emptyDir is a plain directory for now).
func (a *Agent) volumeHostPath(pod *v1.Pod, vol *v1.Volume) (string, error) {
	switch {
	case vol.EmptyDir != nil:
		dir := filepath.Join(a.podDir(pod), "volumes", "kubernetes.io~empty-dir", vol.Name)
		// Containers may run as any user; emptyDir is world-writable like kubelet's.
		if err := os.MkdirAll(dir, 0o777); err != nil {
			return "", fmt.Errorf("volume %q: %w", vol.Name, err)
		}
		if err := os.Chmod(dir, 0o777); err != nil {
			return "", fmt.Errorf("volume %q: %w", vol.Name, err)
		}
		return dir, nil
	case vol.HostPath != nil:
		return hostPathVolume(vol)
	case vol.ConfigMap != nil:
		return "", errVolumeUnsupported{vol.Name, "configMap"}
	case vol.Secret != nil:
		return "", errVolumeUnsupported{vol.Name, "secret"}
	case vol.Projected != nil:
		return "", errVolumeUnsupported{vol.Name, "projected"}
	case vol.DownwardAPI != nil:
		return "", errVolumeUnsupported{vol.Name, "downwardAPI"}
	}
	return "", errVolumeUnsupported{vol.Name, "this kind of"}
}

func hostPathVolume(vol *v1.Volume) (string, error) {
	p := vol.HostPath.Path
	t := v1.HostPathUnset
	if vol.HostPath.Type != nil {
		t = *vol.HostPath.Type
	}
	switch t {
	case v1.HostPathDirectoryOrCreate:
		if err := os.MkdirAll(p, 0o755); err != nil {
			return "", fmt.Errorf("volume %q: %w", vol.Name, err)
		}
	case v1.HostPathFileOrCreate:
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", fmt.Errorf("volume %q: %w", vol.Name, err)
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_RDONLY, 0o644)
		if err != nil {
			return "", fmt.Errorf("volume %q: %w", vol.Name, err)
		}
		f.Close()
	case v1.HostPathUnset:
	default:
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("volume %q: hostPath type check failed: %w", vol.Name, err)
		}
	}
	return p, nil
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
