package registry

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func fieldErrorsText(errs field.ErrorList) string {
	if agg := errs.ToAggregate(); agg != nil {
		return agg.Error()
	}
	return ""
}

func TestConfigMapStrategy(t *testing.T) {
	ctx := context.Background()
	s := configMapStrategy{now: fixedClock}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "default", CreationTimestamp: metav1.NewTime(fixedClock().Add(-3 * time.Minute))},
		Data:       map[string]string{"a.conf": "x", "B_2": "y"},
		BinaryData: map[string][]byte{"bin": {1}},
	}
	s.PrepareForCreate(ctx, cm)
	if errs := s.Validate(ctx, cm); len(errs) > 0 {
		t.Fatalf("valid configMap: %v", errs.ToAggregate())
	}
	table, err := s.ConvertToTable(ctx, &corev1.ConfigMapList{Items: []corev1.ConfigMap{*cm}})
	if err != nil {
		t.Fatal(err)
	}
	assertColumns(t, table, "Name", "Data", "Age")
	assertCells(t, table.Rows[0], "cfg", int64(3), "3m")

	bad := cm.DeepCopy()
	bad.Data["bad/key"] = "z"
	bad.BinaryData["a.conf"] = []byte("dup")
	got := fieldErrorsText(s.Validate(ctx, bad))
	for _, want := range []string{`data[bad/key]: Invalid value: "bad/key"`, `binaryData[a.conf]: Invalid value: "a.conf": duplicate of key present in data`} {
		if !strings.Contains(got, want) {
			t.Errorf("errors %q lack %q", got, want)
		}
	}

	big := cm.DeepCopy()
	big.Data["big"] = strings.Repeat("x", maxConfigDataSize)
	if got := fieldErrorsText(s.Validate(ctx, big)); !strings.Contains(got, "Too long") {
		t.Errorf("oversized configMap: %q", got)
	}
}

func TestConfigMapImmutable(t *testing.T) {
	ctx := context.Background()
	s := configMapStrategy{now: fixedClock}
	old := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "default", ResourceVersion: "5"},
		Data:       map[string]string{"a": "1"},
		Immutable:  ptrTo(true),
	}
	same := old.DeepCopy()
	same.Labels = map[string]string{"metadata": "may-change"}
	if errs := s.ValidateUpdate(ctx, same, old); len(errs) > 0 {
		t.Errorf("metadata change of an immutable configMap: %v", errs.ToAggregate())
	}
	changed := old.DeepCopy()
	changed.Data["a"] = "2"
	if got := fieldErrorsText(s.ValidateUpdate(ctx, changed, old)); !strings.Contains(got, "data: Forbidden: field is immutable when `immutable` is set") {
		t.Errorf("data change: %q", got)
	}
	unset := old.DeepCopy()
	unset.Immutable = nil
	if got := fieldErrorsText(s.ValidateUpdate(ctx, unset, old)); !strings.Contains(got, "immutable: Forbidden") {
		t.Errorf("unsetting immutable: %q", got)
	}
	mutable := old.DeepCopy()
	mutable.Immutable = nil
	edited := mutable.DeepCopy()
	edited.Data["a"] = "2"
	edited.Immutable = ptrTo(true)
	if errs := s.ValidateUpdate(ctx, edited, mutable); len(errs) > 0 {
		t.Errorf("a mutable configMap may change and become immutable: %v", errs.ToAggregate())
	}
}
