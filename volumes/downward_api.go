package volumes

import (
	"fmt"
	"io/fs"
	"math"
	"sort"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// setupDownwardAPI writes the pod's own metadata and resources into files. They are
// rewritten at every sync, so label and annotation changes show up in the files.
func (m *Manager) setupDownwardAPI(pod *v1.Pod, vol *v1.Volume) (string, error) {
	payload, err := m.downwardAPIPayload(pod, vol.DownwardAPI.Items, fileMode(vol.DownwardAPI.DefaultMode))
	if err != nil {
		return "", err
	}
	dir := m.volumeDir(pod, pluginDownwardAPI, vol.Name)
	if err := mkdirVolume(dir, 0o777); err != nil {
		return "", err
	}
	return dir, writePayload(dir, payload, podFSGroup(pod))
}

func (m *Manager) downwardAPIPayload(pod *v1.Pod, items []v1.DownwardAPIVolumeFile, mode int32) (map[string]FileProjection, error) {
	payload := make(map[string]FileProjection, len(items))
	for _, it := range items {
		var value string
		var err error
		switch {
		case it.FieldRef != nil:
			value, err = podFieldValue(pod, it.FieldRef.FieldPath)
		case it.ResourceFieldRef != nil:
			value, err = m.containerResourceValue(pod, it.ResourceFieldRef)
		default:
			err = fmt.Errorf("item %q has neither fieldRef nor resourceFieldRef", it.Path)
		}
		if err != nil {
			return nil, err
		}
		fm := mode
		if it.Mode != nil {
			fm = *it.Mode
		}
		payload[it.Path] = FileProjection{Data: []byte(value), Mode: fs.FileMode(fm)}
	}
	return payload, nil
}

// podFieldValue resolves the fieldRefs a downwardAPI volume may use.
func podFieldValue(pod *v1.Pod, path string) (string, error) {
	if v, ok := MetadataFieldValue(pod, path); ok {
		return v, nil
	}
	switch path {
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	}
	return "", fmt.Errorf("fieldRef %q is not supported in a downwardAPI volume", path)
}

// MetadataFieldValue resolves the downward API's metadata field paths that both env vars
// and downwardAPI volumes take: name, namespace, uid, and one label or annotation
// (metadata.labels['key']). ok is false for any other path.
func MetadataFieldValue(pod *v1.Pod, path string) (value string, ok bool) {
	if key, ok := subscript(path, "metadata.labels"); ok {
		return pod.Labels[key], true
	}
	if key, ok := subscript(path, "metadata.annotations"); ok {
		return pod.Annotations[key], true
	}
	switch path {
	case "metadata.name":
		return pod.Name, true
	case "metadata.namespace":
		return pod.Namespace, true
	case "metadata.uid":
		return string(pod.UID), true
	}
	return "", false
}

// subscript parses `prefix['key']`.
func subscript(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix+"['")
	if !ok || !strings.HasSuffix(rest, "']") {
		return "", false
	}
	return strings.TrimSuffix(rest, "']"), true
}

// formatMap prints labels or annotations as kubelet does: sorted key="quoted value" lines.
func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	lines := make([]string, 0, len(keys))
	for _, k := range keys {
		lines = append(lines, k+"="+strconv.Quote(m[k]))
	}
	return strings.Join(lines, "\n")
}

// containerResourceValue resolves a resourceFieldRef. An unset limit shows the node's
// allocatable amount, as in kubelet; the value is divided by the divisor, rounding up.
func (m *Manager) containerResourceValue(pod *v1.Pod, ref *v1.ResourceFieldSelector) (string, error) {
	c := findContainer(pod, ref.ContainerName)
	if c == nil {
		return "", fmt.Errorf("resourceFieldRef: container %q not found in the pod", ref.ContainerName)
	}
	kind, name, ok := strings.Cut(ref.Resource, ".")
	if !ok || (kind != "limits" && kind != "requests") {
		return "", fmt.Errorf("resourceFieldRef: unsupported resource %q", ref.Resource)
	}
	list := c.Resources.Limits
	if kind == "requests" {
		list = c.Resources.Requests
	}
	q, set := list[v1.ResourceName(name)]
	if !set && kind == "limits" {
		q, set = m.cfg.Allocatable()[v1.ResourceName(name)]
	}
	if !set {
		q = resource.Quantity{}
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	if name == string(v1.ResourceCPU) {
		return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(divisor.MilliValue()))), 10), nil
	}
	return strconv.FormatInt(int64(math.Ceil(float64(q.Value())/float64(divisor.Value()))), 10), nil
}

func findContainer(pod *v1.Pod, name string) *v1.Container {
	for _, list := range [][]v1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range list {
			if list[i].Name == name || (name == "" && len(pod.Spec.Containers) == 1) {
				return &list[i]
			}
		}
	}
	return nil
}
