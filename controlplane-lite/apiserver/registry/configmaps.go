package registry

import (
	"context"
	"reflect"
	"time"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/controlplane-lite/apiserver/storage"
)

func configMapGR() schema.GroupResource { return schema.GroupResource{Resource: "configmaps"} }

// maxConfigDataSize bounds the summed size of a ConfigMap's or Secret's values, as
// kube-apiserver does (core.MaxSecretSize): etcd values must stay well below its
// request size limit.
const maxConfigDataSize = 1 * 1024 * 1024

func configMapDefinition(now clock) Definition {
	return Definition{
		Resource: storage.Resource{
			GroupResource:    configMapGR(),
			GroupVersionKind: corev1.SchemeGroupVersion.WithKind("ConfigMap"),
			Prefix:           "/registry/configmaps",
			Namespaced:       true,
			NewFunc:          func() runtime.Object { return &corev1.ConfigMap{} },
			NewListFunc:      func() runtime.Object { return &corev1.ConfigMapList{} },
			AttrFunc:         configMapAttrs,
		},
		Singular:   "configmap",
		ShortNames: []string{"cm"},
		ListKind:   "ConfigMapList",
		Verbs:      verbsAll(),
		Strategy:   configMapStrategy{now: now},
	}
}

// configMapStrategy: a ConfigMap is plain data, with neither status nor generation.
type configMapStrategy struct {
	plainData
	now clock
}

func (configMapStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	cm := obj.(*corev1.ConfigMap)
	errs := validateObjectMeta(&cm.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	return append(errs, validateConfigMapData(cm)...)
}

func (configMapStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	cm, oldCM := obj.(*corev1.ConfigMap), old.(*corev1.ConfigMap)
	errs := validateObjectMetaUpdate(&cm.ObjectMeta, &oldCM.ObjectMeta)
	var changed []string
	if !equalMaps(oldCM.Data, cm.Data) {
		changed = append(changed, "data")
	}
	if !equalMaps(oldCM.BinaryData, cm.BinaryData) {
		changed = append(changed, "binaryData")
	}
	errs = append(errs, validateImmutable(oldCM.Immutable, cm.Immutable, changed)...)
	return append(errs, validateConfigMapData(cm)...)
}

// validateConfigMapData checks that every key could be a file name in a volume and that
// data and binaryData together stay within the size limit.
func validateConfigMapData(cm *corev1.ConfigMap) field.ErrorList {
	var errs field.ErrorList
	size := 0
	dataPath, binaryPath := field.NewPath("data"), field.NewPath("binaryData")
	for key, value := range cm.Data {
		errs = append(errs, validateConfigKey(dataPath.Key(key), key)...)
		size += len(value)
	}
	for key, value := range cm.BinaryData {
		errs = append(errs, validateConfigKey(binaryPath.Key(key), key)...)
		if _, dup := cm.Data[key]; dup {
			errs = append(errs, field.Invalid(binaryPath.Key(key), key, "duplicate of key present in data"))
		}
		size += len(value)
	}
	if size > maxConfigDataSize {
		errs = append(errs, field.TooLong(field.NewPath(""), "", maxConfigDataSize))
	}
	return errs
}

// validateConfigKey: keys become file names in configMap and secret volumes.
func validateConfigKey(fldPath *field.Path, key string) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsConfigMapKey(key) {
		errs = append(errs, field.Invalid(fldPath, key, msg))
	}
	return errs
}

// validateImmutable enforces the immutable field of ConfigMaps and Secrets: once true it
// cannot be unset, and no field may change (changed names the fields that did).
func validateImmutable(oldImmutable, newImmutable *bool, changed []string) field.ErrorList {
	if oldImmutable == nil || !*oldImmutable {
		return nil
	}
	const msg = "field is immutable when `immutable` is set"
	var errs field.ErrorList
	if newImmutable == nil || !*newImmutable {
		errs = append(errs, field.Forbidden(field.NewPath("immutable"), msg))
	}
	for _, name := range changed {
		errs = append(errs, field.Forbidden(field.NewPath(name), msg))
	}
	return errs
}

// equalMaps compares data maps with nil and empty alike, as apiequality.Semantic does.
func equalMaps[V any](a, b map[string]V) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

func configMapAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok {
		return nil, nil, unexpectedType("*corev1.ConfigMap", obj)
	}
	return labels.Set(cm.Labels), objectMetaFields(&cm.ObjectMeta, true), nil
}

func configMapColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		nameColumn(),
		{Name: "Data", Type: "string", Description: corev1.ConfigMap{}.SwaggerDoc()["data"]},
		ageColumn(),
	}
}

func (s configMapStrategy) ConvertToTable(_ context.Context, obj runtime.Object) (*metav1.Table, error) {
	return tableOf(obj, s.now, configMapColumns(), configMapItems, configMapRow)
}

func configMapItems(list *corev1.ConfigMapList) []corev1.ConfigMap { return list.Items }

func configMapRow(cm *corev1.ConfigMap, now time.Time) metav1.TableRow {
	return newRow(cm, cm.Name, int64(len(cm.Data)+len(cm.BinaryData)), age(now, cm.CreationTimestamp))
}
