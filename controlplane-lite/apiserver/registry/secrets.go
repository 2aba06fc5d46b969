package registry

import (
	"context"
	"encoding/json"
	"time"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/controlplane-lite/apiserver/storage"
)

func secretGR() schema.GroupResource { return schema.GroupResource{Resource: "secrets"} }

func secretDefinition(now clock) Definition {
	return Definition{
		Resource: storage.Resource{
			GroupResource:    secretGR(),
			GroupVersionKind: corev1.SchemeGroupVersion.WithKind("Secret"),
			Prefix:           "/registry/secrets",
			Namespaced:       true,
			NewFunc:          func() runtime.Object { return &corev1.Secret{} },
			NewListFunc:      func() runtime.Object { return &corev1.SecretList{} },
			AttrFunc:         secretAttrs,
		},
		Singular: "secret",
		ListKind: "SecretList",
		Verbs:    verbsAll(),
		Strategy: secretStrategy{now: now},
	}
}

// secretStrategy: like a ConfigMap, plus a type that fixes which keys must be present.
type secretStrategy struct {
	immediateDelete
	now clock
}

// Default sets the type to Opaque and folds the write-only stringData into data, which
// kube-apiserver does while converting v1 to its internal version: stringData is never
// stored and wins over data for the same key.
func (secretStrategy) Default(obj runtime.Object) {
	s := obj.(*corev1.Secret)
	if s.Type == "" {
		s.Type = corev1.SecretTypeOpaque
	}
	if len(s.StringData) > 0 && s.Data == nil {
		s.Data = make(map[string][]byte, len(s.StringData))
	}
	for k, v := range s.StringData {
		s.Data[k] = []byte(v)
	}
	s.StringData = nil
}

func (st secretStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	st.Default(obj)
	clearDeletion(&obj.(*corev1.Secret).ObjectMeta)
}

func (st secretStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	st.Default(obj)
	keepSystemMeta(&obj.(*corev1.Secret).ObjectMeta, &old.(*corev1.Secret).ObjectMeta)
}

func (secretStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	s := obj.(*corev1.Secret)
	errs := validateObjectMeta(&s.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	return append(errs, validateSecretData(s)...)
}

func (secretStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	s, oldS := obj.(*corev1.Secret), old.(*corev1.Secret)
	errs := validateObjectMetaUpdate(&s.ObjectMeta, &oldS.ObjectMeta)
	errs = append(errs, apivalidation.ValidateImmutableField(s.Type, oldS.Type, field.NewPath("type"))...)
	var changed []string
	if !equalMaps(oldS.Data, s.Data) {
		changed = append(changed, "data")
	}
	errs = append(errs, validateImmutable(oldS.Immutable, s.Immutable, changed)...)
	return append(errs, validateSecretData(s)...)
}

// validateSecretData checks keys and size like a ConfigMap's, then what the type requires.
func validateSecretData(s *corev1.Secret) field.ErrorList {
	var errs field.ErrorList
	dataPath := field.NewPath("data")
	size := 0
	for key, value := range s.Data {
		errs = append(errs, validateConfigKey(dataPath.Key(key), key)...)
		size += len(value)
	}
	if size > maxConfigDataSize {
		errs = append(errs, field.TooLong(dataPath, "", maxConfigDataSize))
	}
	return append(errs, validateSecretType(s, dataPath)...)
}

// validateSecretType applies the per-type rules of kube-apiserver's ValidateSecret.
func validateSecretType(s *corev1.Secret, dataPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	require := func(keys ...string) {
		for _, k := range keys {
			if _, ok := s.Data[k]; !ok {
				errs = append(errs, field.Required(dataPath.Key(k), ""))
			}
		}
	}
	mustBeJSON := func(key string) {
		if v, ok := s.Data[key]; ok {
			var anything map[string]any
			if err := json.Unmarshal(v, &anything); err != nil {
				errs = append(errs, field.Invalid(dataPath.Key(key), "<secret contents redacted>", err.Error()))
			}
		}
	}
	switch s.Type {
	case corev1.SecretTypeServiceAccountToken:
		if s.Annotations[corev1.ServiceAccountNameKey] == "" {
			errs = append(errs, field.Required(field.NewPath("metadata", "annotations").Key(corev1.ServiceAccountNameKey), ""))
		}
	case corev1.SecretTypeDockercfg:
		require(corev1.DockerConfigKey)
		mustBeJSON(corev1.DockerConfigKey)
	case corev1.SecretTypeDockerConfigJson:
		require(corev1.DockerConfigJsonKey)
		mustBeJSON(corev1.DockerConfigJsonKey)
	case corev1.SecretTypeBasicAuth:
		_, user := s.Data[corev1.BasicAuthUsernameKey]
		_, pass := s.Data[corev1.BasicAuthPasswordKey]
		if !user && !pass {
			require(corev1.BasicAuthUsernameKey, corev1.BasicAuthPasswordKey)
		}
	case corev1.SecretTypeSSHAuth:
		require(corev1.SSHAuthPrivateKey)
	case corev1.SecretTypeTLS:
		require(corev1.TLSCertKey, corev1.TLSPrivateKeyKey)
	}
	return errs
}

// secretAttrs: secrets can also be selected by type (kubectl get secret --field-selector type=...).
func secretAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return nil, nil, unexpectedType("*corev1.Secret", obj)
	}
	f := objectMetaFields(&s.ObjectMeta, true)
	f["type"] = string(s.Type)
	return labels.Set(s.Labels), f, nil
}

func secretColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		nameColumn(),
		{Name: "Type", Type: "string", Description: corev1.Secret{}.SwaggerDoc()["type"]},
		{Name: "Data", Type: "string", Description: corev1.Secret{}.SwaggerDoc()["data"]},
		ageColumn(),
	}
}

func (s secretStrategy) ConvertToTable(_ context.Context, obj runtime.Object) (*metav1.Table, error) {
	return tableOf(obj, s.now, secretColumns(), secretItems, secretRow)
}

func secretItems(list *corev1.SecretList) []corev1.Secret { return list.Items }

func secretRow(s *corev1.Secret, now time.Time) metav1.TableRow {
	return newRow(s, s.Name, string(s.Type), int64(len(s.Data)), age(now, s.CreationTimestamp))
}
