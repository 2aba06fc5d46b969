package registry

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestSecretStrategyDefaults(t *testing.T) {
	ctx := context.Background()
	s := secretStrategy{now: fixedClock}
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: "default", CreationTimestamp: metav1.NewTime(fixedClock().Add(-time.Hour))},
		Data:       map[string][]byte{"user": []byte("old"), "keep": []byte("k")},
		StringData: map[string]string{"user": "admin", "password": "hunter2"},
	}
	s.PrepareForCreate(ctx, sec)
	if sec.Type != corev1.SecretTypeOpaque {
		t.Errorf("type = %q, want Opaque", sec.Type)
	}
	if sec.StringData != nil || string(sec.Data["user"]) != "admin" || string(sec.Data["password"]) != "hunter2" || string(sec.Data["keep"]) != "k" {
		t.Errorf("stringData not folded into data: %+v / %v", sec.Data, sec.StringData)
	}
	if errs := s.Validate(ctx, sec); len(errs) > 0 {
		t.Fatalf("valid secret: %v", errs.ToAggregate())
	}
	table, err := s.ConvertToTable(ctx, sec)
	if err != nil {
		t.Fatal(err)
	}
	assertColumns(t, table, "Name", "Type", "Data", "Age")
	assertCells(t, table.Rows[0], "creds", "Opaque", int64(3), "60m")

	_, fields, err := secretAttrs(sec)
	if err != nil || fields["type"] != "Opaque" {
		t.Errorf("field set %v, %v: want type=Opaque", fields, err)
	}
}

func TestSecretTypes(t *testing.T) {
	ctx := context.Background()
	s := secretStrategy{now: fixedClock}
	cases := []struct {
		typ     corev1.SecretType
		data    map[string][]byte
		wantErr string
	}{
		{corev1.SecretTypeDockerConfigJson, map[string][]byte{".dockerconfigjson": []byte(`{"auths":{}}`)}, ""},
		{corev1.SecretTypeDockerConfigJson, nil, "data[.dockerconfigjson]: Required value"},
		{corev1.SecretTypeDockerConfigJson, map[string][]byte{".dockerconfigjson": []byte(`not json`)}, "data[.dockerconfigjson]: Invalid value: \"<secret contents redacted>\""},
		{corev1.SecretTypeTLS, map[string][]byte{"tls.crt": []byte("c"), "tls.key": []byte("k")}, ""},
		{corev1.SecretTypeTLS, map[string][]byte{"tls.crt": []byte("c")}, "data[tls.key]: Required value"},
		{corev1.SecretTypeBasicAuth, map[string][]byte{"password": []byte("p")}, ""},
		{corev1.SecretTypeBasicAuth, map[string][]byte{}, "data[username]: Required value"},
		{corev1.SecretTypeSSHAuth, map[string][]byte{}, "data[ssh-privatekey]: Required value"},
		{corev1.SecretTypeServiceAccountToken, map[string][]byte{}, "metadata.annotations[kubernetes.io/service-account.name]: Required value"},
		{"example.com/custom", map[string][]byte{"anything": []byte("x")}, ""},
		{corev1.SecretTypeOpaque, map[string][]byte{"bad key": []byte("x")}, `data[bad key]: Invalid value: "bad key"`},
	}
	for _, c := range cases {
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "default"}, Type: c.typ, Data: c.data}
		s.PrepareForCreate(ctx, sec)
		got := fieldErrorsText(s.Validate(ctx, sec))
		if (c.wantErr == "") != (got == "") || !strings.Contains(got, c.wantErr) {
			t.Errorf("%s %v: errors %q, want %q", c.typ, c.data, got, c.wantErr)
		}
	}
}

func TestSecretUpdate(t *testing.T) {
	ctx := context.Background()
	s := secretStrategy{now: fixedClock}
	old := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "default", ResourceVersion: "3"}, Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"a": []byte("1")}}
	retyped := old.DeepCopy()
	retyped.Type = corev1.SecretTypeBasicAuth
	retyped.Data["username"] = []byte("u")
	if got := fieldErrorsText(s.ValidateUpdate(ctx, retyped, old)); !strings.Contains(got, "type: Invalid value") || !strings.Contains(got, "field is immutable") {
		t.Errorf("type change: %q", got)
	}
	// An update without a type keeps the default rather than failing as a type change.
	untyped := old.DeepCopy()
	untyped.Type = ""
	s.PrepareForUpdate(ctx, untyped, old)
	if errs := s.ValidateUpdate(ctx, untyped, old); len(errs) > 0 {
		t.Errorf("update without type: %v", errs.ToAggregate())
	}
	frozen := old.DeepCopy()
	frozen.Immutable = ptrTo(true)
	edited := frozen.DeepCopy()
	edited.Data["a"] = []byte("2")
	if got := fieldErrorsText(s.ValidateUpdate(ctx, edited, frozen)); !strings.Contains(got, "data: Forbidden: field is immutable when `immutable` is set") {
		t.Errorf("immutable secret edited: %q", got)
	}
}
