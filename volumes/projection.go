package volumes

import (
	"context"
	"fmt"
	"io/fs"
	"os"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// defaultFileMode is the mode of projected files when neither item nor volume sets one
// (v1.ConfigMapVolumeSourceDefaultMode and its siblings are all 0644).
const defaultFileMode int32 = 0o644

// setupConfigMap projects a ConfigMap into a directory on disk.
func (m *Manager) setupConfigMap(ctx context.Context, pod *v1.Pod, vol *v1.Volume, src Sources) (string, error) {
	s := vol.ConfigMap
	payload, err := configMapPayload(ctx, pod.Namespace, s.Name, s.Items, fileMode(s.DefaultMode), optional(s.Optional), src)
	if err != nil {
		return "", err
	}
	dir := m.volumeDir(pod, pluginConfigMap, vol.Name)
	if err := mkdirVolume(dir, 0o777); err != nil {
		return "", err
	}
	return dir, writePayload(dir, payload, podFSGroup(pod))
}

// setupSecret projects a Secret; its files live on a tmpfs so they never reach the disk.
func (m *Manager) setupSecret(ctx context.Context, pod *v1.Pod, vol *v1.Volume, src Sources) (string, error) {
	s := vol.Secret
	payload, err := secretPayload(ctx, pod.Namespace, s.SecretName, s.Items, fileMode(s.DefaultMode), optional(s.Optional), src)
	if err != nil {
		return "", err
	}
	dir := m.volumeDir(pod, pluginSecret, vol.Name)
	if err := m.ensureTmpfs(dir, m.tmpfsOptions(pod, nil)); err != nil {
		return "", err
	}
	return dir, writePayload(dir, payload, podFSGroup(pod))
}

// writePayload publishes payload in dir, then gives it to the pod's fsGroup (read-only
// bits: these volumes are the node's to write).
func writePayload(dir string, payload map[string]FileProjection, fsGroup *int64) error {
	if err := NewAtomicWriter(dir).Write(payload); err != nil {
		return fmt.Errorf("write files of %s: %w", dir, err)
	}
	return setOwnership(dir, fsGroup, true)
}

func optional(p *bool) bool { return p != nil && *p }

func fileMode(p *int32) int32 {
	if p == nil {
		return defaultFileMode
	}
	return *p
}

// configMapPayload maps a ConfigMap's keys (or the chosen items) to files. A missing
// ConfigMap is an error unless optional, in which case it projects nothing.
func configMapPayload(ctx context.Context, ns, name string, items []v1.KeyToPath, mode int32, opt bool, src Sources) (map[string]FileProjection, error) {
	cm, err := src.ConfigMap(ctx, ns, name)
	if apierrors.IsNotFound(err) {
		if opt {
			return map[string]FileProjection{}, nil
		}
		// kubelet's wording: `configmap "name" not found`.
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmap"}, name)
	}
	if err != nil {
		return nil, fmt.Errorf("get configmap %q: %w", name, err)
	}
	data := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return keyPayload(data, items, mode, opt, "configmap", ns, name)
}

func secretPayload(ctx context.Context, ns, name string, items []v1.KeyToPath, mode int32, opt bool, src Sources) (map[string]FileProjection, error) {
	s, err := src.Secret(ctx, ns, name)
	if apierrors.IsNotFound(err) {
		if opt {
			return map[string]FileProjection{}, nil
		}
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secret"}, name)
	}
	if err != nil {
		return nil, fmt.Errorf("get secret %q: %w", name, err)
	}
	return keyPayload(s.Data, items, mode, opt, "secret", ns, name)
}

// keyPayload selects items (key → path, with their own mode) or, without items, every key
// under its own name. A listed key that is missing fails the volume unless it is optional.
func keyPayload(data map[string][]byte, items []v1.KeyToPath, mode int32, opt bool, kind, ns, name string) (map[string]FileProjection, error) {
	payload := map[string]FileProjection{}
	if len(items) == 0 {
		for k, v := range data {
			payload[k] = FileProjection{Data: v, Mode: fs.FileMode(mode)}
		}
		return payload, nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if opt {
				continue
			}
			// kubelet's wording, with the object named.
			return nil, fmt.Errorf("%s %s/%s references non-existent %s key: %s", kind, ns, name, keyNoun(kind), it.Key)
		}
		m := mode
		if it.Mode != nil {
			m = *it.Mode
		}
		payload[it.Path] = FileProjection{Data: v, Mode: fs.FileMode(m)}
	}
	return payload, nil
}

// setupProjected merges its sources into one directory on a tmpfs (it may hold secrets).
func (m *Manager) setupProjected(ctx context.Context, pod *v1.Pod, vol *v1.Volume, src Sources) (string, error) {
	p := vol.Projected
	mode := fileMode(p.DefaultMode)
	payload := map[string]FileProjection{}
	merge := func(part map[string]FileProjection) {
		for k, v := range part {
			payload[k] = v
		}
	}
	dir := m.volumeDir(pod, pluginProjected, vol.Name)
	_, statErr := os.Stat(dir)
	firstSetup := os.IsNotExist(statErr)
	for i, s := range p.Sources {
		var part map[string]FileProjection
		var err error
		switch {
		case s.ConfigMap != nil:
			part, err = configMapPayload(ctx, pod.Namespace, s.ConfigMap.Name, s.ConfigMap.Items, mode, optional(s.ConfigMap.Optional), src)
		case s.Secret != nil:
			part, err = secretPayload(ctx, pod.Namespace, s.Secret.Name, s.Secret.Items, mode, optional(s.Secret.Optional), src)
		case s.DownwardAPI != nil:
			part, err = m.downwardAPIPayload(pod, s.DownwardAPI.Items, mode)
		case s.ServiceAccountToken != nil:
			// There is no token issuer yet: leave the file out and say so once.
			if firstSetup && m.cfg.Recorder != nil {
				m.cfg.Recorder.Eventf(pod, v1.EventTypeWarning, "FailedMount",
					"MountVolume.SetUp skipped serviceAccountToken %q of volume %q: this node cannot issue service account tokens yet",
					s.ServiceAccountToken.Path, vol.Name)
			}
		default:
			return "", fmt.Errorf("projected volume: sources[%d] is of a kind this node does not support", i)
		}
		if err != nil {
			return "", err
		}
		merge(part)
	}
	if err := m.ensureTmpfs(dir, m.tmpfsOptions(pod, nil)); err != nil {
		return "", err
	}
	return dir, writePayload(dir, payload, podFSGroup(pod))
}

func keyNoun(kind string) string {
	if kind == "secret" {
		return "secret"
	}
	return "config"
}
