package storage

import (
	"bytes"
	"fmt"
	"strconv"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes/scheme"
)

// codec turns objects of one Resource into the bytes kube-apiserver stores in etcd and back:
// protobuf wrapped in a runtime.Unknown behind the "k8s\x00" magic prefix.
type codec struct {
	res        Resource
	serializer *protobuf.Serializer
}

func newCodec(res Resource) *codec {
	return &codec{res: res, serializer: protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)}
}

// encode returns the storage form of obj. obj must be private to the caller: its
// resourceVersion is cleared (etcd's mod_revision is the version, it is never stored) and its
// TypeMeta set to the Resource's kind, which is what the envelope records.
func (c *codec) encode(obj runtime.Object) ([]byte, error) {
	accessor, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	accessor.SetResourceVersion("")
	accessor.SetSelfLink("")
	obj.GetObjectKind().SetGroupVersionKind(c.res.GroupVersionKind)
	var buf bytes.Buffer
	if err := c.serializer.Encode(obj, &buf); err != nil {
		return nil, fmt.Errorf("encode %s: %w", c.res.GroupVersionKind.Kind, err)
	}
	return buf.Bytes(), nil
}

// decode reads a stored value into a new object carrying TypeMeta and rev as resourceVersion.
func (c *codec) decode(data []byte, rev int64) (runtime.Object, error) {
	into := c.res.NewFunc()
	obj, _, err := c.serializer.Decode(data, nil, into)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", c.res.GroupVersionKind.Kind, err)
	}
	if err := setResourceVersion(obj, rev); err != nil {
		return nil, err
	}
	obj.GetObjectKind().SetGroupVersionKind(c.res.GroupVersionKind)
	return obj, nil
}

func setResourceVersion(obj runtime.Object, rev int64) error {
	accessor, err := meta.Accessor(obj)
	if err != nil {
		return err
	}
	accessor.SetResourceVersion(formatRV(rev))
	return nil
}

func formatRV(rev int64) string {
	if rev == 0 {
		return ""
	}
	return strconv.FormatInt(rev, 10)
}

// parseRV parses a client-supplied resourceVersion; "" parses as 0.
func parseRV(rv string) (int64, error) {
	if rv == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid resource version %q", rv)
	}
	return n, nil
}
