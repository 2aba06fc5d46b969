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

// TestTableOf covers the printing shared by every resource: one row per object, the
// clock read once per table, the list's metadata kept, and an error for foreign types.
func TestTableOf(t *testing.T) {
	reads := 0
	now := func() time.Time { reads++; return fixedClock() }
	columns := []metav1.TableColumnDefinition{nameColumn(), ageColumn()}
	row := func(cm *corev1.ConfigMap, at time.Time) metav1.TableRow {
		return newRow(cm, cm.Name, age(at, cm.CreationTimestamp))
	}
	created := metav1.NewTime(fixedClock().Add(-time.Minute))
	list := &corev1.ConfigMapList{
		ListMeta: metav1.ListMeta{ResourceVersion: "42", Continue: "next"},
		Items: []corev1.ConfigMap{
			{ObjectMeta: metav1.ObjectMeta{Name: "a", CreationTimestamp: created}},
			{ObjectMeta: metav1.ObjectMeta{Name: "b", CreationTimestamp: created}},
		},
	}
	table, err := tableOf(list, now, columns, configMapItems, row)
	if err != nil {
		t.Fatal(err)
	}
	if reads != 1 || len(table.Rows) != 2 || table.ResourceVersion != "42" || table.Continue != "next" {
		t.Fatalf("clock reads %d, table %+v", reads, table)
	}
	if got := table.Rows[1].Cells; got[0] != "b" || got[1] != "60s" || table.Rows[1].Object.Object != &list.Items[1] {
		t.Errorf("row b: cells %v, object %p", got, table.Rows[1].Object.Object)
	}

	single, err := tableOf(&list.Items[0], now, columns, configMapItems, row)
	if err != nil || len(single.Rows) != 1 || single.Rows[0].Cells[0] != "a" {
		t.Errorf("single object: %+v, %v", single, err)
	}

	empty, err := tableOf(&corev1.ConfigMapList{}, now, columns, configMapItems, row)
	if err != nil || empty.Rows != nil {
		t.Errorf("empty list: rows %#v, %v", empty.Rows, err)
	}

	if _, err := tableOf(&corev1.Secret{}, now, columns, configMapItems, row); err == nil ||
		!strings.Contains(err.Error(), "ConfigMap or") || !strings.Contains(err.Error(), "*v1.Secret") {
		t.Errorf("foreign type: %v", err)
	}
}

func TestPlainData(t *testing.T) {
	var s plainData
	grace := int64(5)
	deleted := metav1.NewTime(fixedClock())
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", DeletionTimestamp: &deleted, DeletionGracePeriodSeconds: &grace}}
	s.PrepareForCreate(context.Background(), cm)
	if cm.DeletionTimestamp != nil || cm.DeletionGracePeriodSeconds != nil {
		t.Errorf("create kept deletion metadata: %+v", cm.ObjectMeta)
	}

	old := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", UID: "uid-1", CreationTimestamp: deleted}}
	replaced := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}}
	s.PrepareForUpdate(context.Background(), replaced, old)
	if replaced.UID != "uid-1" || !replaced.CreationTimestamp.Equal(&deleted) {
		t.Errorf("update lost server metadata: %+v", replaced.ObjectMeta)
	}
	if s.GracefulDelete(context.Background(), cm, &metav1.DeleteOptions{}) {
		t.Error("plain data is deleted at once")
	}
}

func TestRequiredOneOf(t *testing.T) {
	path := field.NewPath("spec", "restartPolicy")
	allowed := []corev1.RestartPolicy{corev1.RestartPolicyAlways, corev1.RestartPolicyNever}
	for _, tc := range []struct {
		value corev1.RestartPolicy
		want  field.ErrorType // "" for no error
	}{
		{"", field.ErrorTypeRequired},
		{"Sometimes", field.ErrorTypeNotSupported},
		{corev1.RestartPolicyNever, ""},
	} {
		errs := requiredOneOf(tc.value, allowed, path)
		switch {
		case tc.want == "" && len(errs) != 0:
			t.Errorf("%q: unexpected %v", tc.value, errs)
		case tc.want != "" && (len(errs) != 1 || errs[0].Type != tc.want || errs[0].Field != path.String()):
			t.Errorf("%q: got %v, want one %s at %s", tc.value, errs, tc.want, path)
		}
	}
}
