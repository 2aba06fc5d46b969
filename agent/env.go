package agent

import (
	"context"
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-sh/skiff/volumes"
)

// containerEnv resolves a container's environment in kubelet's order: envFrom sources
// first, then env entries, each of which may refer to earlier ones as $(NAME).
func (a *Agent) containerEnv(ctx context.Context, pod *v1.Pod, c *v1.Container, podIPs []string) ([]*runtimeapi.KeyValue, error) {
	var order []string
	vals := map[string]string{}
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	for _, src := range c.EnvFrom {
		kv, err := a.envFromSource(ctx, pod.Namespace, src)
		if err != nil {
			return nil, err
		}
		for k, v := range kv {
			set(src.Prefix+k, v)
		}
	}
	for _, e := range c.Env {
		v := expand(e.Value, vals)
		if e.ValueFrom != nil {
			var ok bool
			var err error
			v, ok, err = a.envValueFrom(ctx, pod, c, e.ValueFrom, podIPs)
			if err != nil && e.ValueFrom.ConfigMapKeyRef == nil && e.ValueFrom.SecretKeyRef == nil {
				err = fmt.Errorf("env %s: %w", e.Name, err)
			}
			if err != nil {
				return nil, err // configMap and secret errors are kubelet's words as they are
			}
			if !ok {
				continue // an optional source that does not exist
			}
		}
		set(e.Name, v)
	}
	out := make([]*runtimeapi.KeyValue, 0, len(order))
	for _, k := range order {
		out = append(out, &runtimeapi.KeyValue{Key: k, Value: []byte(vals[k])})
	}
	return out, nil
}

func (a *Agent) envValueFrom(ctx context.Context, pod *v1.Pod, c *v1.Container, src *v1.EnvVarSource, podIPs []string) (string, bool, error) {
	switch {
	case src.FieldRef != nil:
		v, err := a.podFieldValue(pod, src.FieldRef.FieldPath, podIPs)
		return v, err == nil, err
	case src.ResourceFieldRef != nil:
		v, ok := a.resourceFieldValue(c, src.ResourceFieldRef)
		if !ok {
			return "", false, fmt.Errorf("unsupported resource %q", src.ResourceFieldRef.Resource)
		}
		return v, true, nil
	case src.ConfigMapKeyRef != nil:
		ref := src.ConfigMapKeyRef
		cm, err := a.cfg.Client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return optionalMissing(ref.Optional, sourceError("configmap", ref.Name, err))
		}
		v, ok := cm.Data[ref.Key]
		if !ok {
			return optionalMissing(ref.Optional, fmt.Errorf("couldn't find key %s in ConfigMap %s/%s", ref.Key, pod.Namespace, ref.Name))
		}
		return v, true, nil
	case src.SecretKeyRef != nil:
		ref := src.SecretKeyRef
		s, err := a.cfg.Client.CoreV1().Secrets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return optionalMissing(ref.Optional, sourceError("secret", ref.Name, err))
		}
		v, ok := s.Data[ref.Key]
		if !ok {
			return optionalMissing(ref.Optional, fmt.Errorf("couldn't find key %s in Secret %s/%s", ref.Key, pod.Namespace, ref.Name))
		}
		return string(v), true, nil
	}
	return "", false, fmt.Errorf("unsupported valueFrom")
}

func (a *Agent) envFromSource(ctx context.Context, ns string, src v1.EnvFromSource) (map[string]string, error) {
	switch {
	case src.ConfigMapRef != nil:
		cm, err := a.cfg.Client.CoreV1().ConfigMaps(ns).Get(ctx, src.ConfigMapRef.Name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) && src.ConfigMapRef.Optional != nil && *src.ConfigMapRef.Optional {
				return nil, nil
			}
			return nil, sourceError("configmap", src.ConfigMapRef.Name, err)
		}
		return cm.Data, nil
	case src.SecretRef != nil:
		s, err := a.cfg.Client.CoreV1().Secrets(ns).Get(ctx, src.SecretRef.Name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) && src.SecretRef.Optional != nil && *src.SecretRef.Optional {
				return nil, nil
			}
			return nil, sourceError("secret", src.SecretRef.Name, err)
		}
		out := make(map[string]string, len(s.Data))
		for k, v := range s.Data {
			out[k] = string(v)
		}
		return out, nil
	}
	return nil, nil
}

// sourceError words a failed read of a configMap or secret: kubelet's `configmap "x" not
// found` when it is missing (still a NotFound error), else the reason it could not be read.
func sourceError(kind, name string, err error) error {
	if apierrors.IsNotFound(err) {
		return apierrors.NewNotFound(schema.GroupResource{Resource: kind}, name)
	}
	return fmt.Errorf("get %s %q: %w", kind, name, err)
}

func optionalMissing(optional *bool, err error) (string, bool, error) {
	if optional != nil && *optional {
		return "", false, nil
	}
	return "", false, err
}

// podFieldValue resolves the downward-API field paths the API server allows in env.
func (a *Agent) podFieldValue(pod *v1.Pod, path string, podIPs []string) (string, error) {
	if v, ok := volumes.MetadataFieldValue(pod, path); ok {
		return v, nil
	}
	switch path {
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.hostIPs":
		return a.cfg.NodeIP, nil
	case "status.podIP":
		if len(podIPs) > 0 {
			return podIPs[0], nil
		}
		return "", nil
	case "status.podIPs":
		return strings.Join(podIPs, ","), nil
	}
	return "", fmt.Errorf("unsupported fieldPath %q", path)
}

func envMap(kvs []*runtimeapi.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = string(kv.Value)
	}
	return m
}

func expandAll(in []string, vars map[string]string) []string {
	if in == nil {
		return nil
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = expand(s, vars)
	}
	return out
}

// expand implements Kubernetes' $(VAR) syntax: $(NAME) becomes the variable's value when
// it is defined and stays as written when not; $$ escapes a dollar.
func expand(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}
