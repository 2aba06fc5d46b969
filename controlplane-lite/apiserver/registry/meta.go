package registry

import (
	"fmt"
	"time"

	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// clock returns the current time; strategies take one so tests can fix "now" for AGE
// columns and condition timestamps.
type clock func() time.Time

// validateObjectMeta checks name (with nameFn), namespace presence, labels, annotations,
// owner references and finalizers, naming fields under "metadata" as kube does.
func validateObjectMeta(meta *metav1.ObjectMeta, namespaced bool, nameFn apivalidation.ValidateNameFunc) field.ErrorList {
	return apivalidation.ValidateObjectMeta(meta, namespaced, nameFn, field.NewPath("metadata"))
}

// validateObjectMetaUpdate checks the immutable metadata (name, namespace, uid,
// creationTimestamp ...) and the labels and annotations of the new object.
func validateObjectMetaUpdate(newMeta, oldMeta *metav1.ObjectMeta) field.ErrorList {
	return apivalidation.ValidateObjectMetaUpdate(newMeta, oldMeta, field.NewPath("metadata"))
}

// updateGeneration carries the stored generation over and bumps it when the spec
// changed, so controllers can compare it with status.observedGeneration.
func updateGeneration(newMeta, oldMeta *metav1.ObjectMeta, specChanged bool) {
	keepSystemMeta(newMeta, oldMeta)
	if specChanged {
		newMeta.Generation++
	}
}

// age prints a timestamp the way kubectl's AGE column does.
func age(now time.Time, t metav1.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

// microAge is age for MicroTime fields (events' eventTime and series).
func microAge(now time.Time, t metav1.MicroTime) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

// newTable builds a Table from rows printed for one object or for a list. As in
// kube-apiserver, the rows always carry the wide (priority 1) cells and kubectl hides
// them unless asked for -o wide; each row keeps its object so the REST layer can embed
// it (or its metadata) per the request's includeObject.
func newTable(columns []metav1.TableColumnDefinition, obj runtime.Object, rows []metav1.TableRow) *metav1.Table {
	table := &metav1.Table{
		TypeMeta:          metav1.TypeMeta{APIVersion: metav1.SchemeGroupVersion.String(), Kind: "Table"},
		ColumnDefinitions: columns,
		Rows:              rows,
	}
	switch m := obj.(type) {
	case metav1.ListInterface:
		table.ResourceVersion = m.GetResourceVersion()
		table.Continue = m.GetContinue()
		table.RemainingItemCount = m.GetRemainingItemCount()
	case metav1.Object:
		table.ResourceVersion = m.GetResourceVersion()
	}
	return table
}

func newRow(obj runtime.Object, cells ...interface{}) metav1.TableRow {
	return metav1.TableRow{Cells: cells, Object: runtime.RawExtension{Object: obj}}
}

func unexpectedType(want string, got runtime.Object) error {
	return fmt.Errorf("registry: expected %s, got %T", want, got)
}

// nameColumn and ageColumn are the columns every resource's table shares.
func nameColumn() metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: "Name", Type: "string", Format: "name", Description: metav1.ObjectMeta{}.SwaggerDoc()["name"]}
}

func ageColumn() metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: "Age", Type: "string", Description: metav1.ObjectMeta{}.SwaggerDoc()["creationTimestamp"]}
}

// objectMetaFields are the metadata fields every resource can be selected by;
// cluster-scoped resources have no metadata.namespace, as in kube-apiserver.
func objectMetaFields(meta *metav1.ObjectMeta, namespaced bool) fields.Set {
	f := fields.Set{"metadata.name": meta.Name}
	if namespaced {
		f["metadata.namespace"] = meta.Namespace
	}
	return f
}

// keepSystemMeta restores on an update the metadata only the server sets, as kube's
// generic registry does before the strategy runs: clients replacing an object from a
// file (kubectl replace) send no uid or creationTimestamp and must not lose them, and
// no update may undo a requested deletion.
func keepSystemMeta(newMeta, oldMeta *metav1.ObjectMeta) {
	if newMeta.UID == "" {
		newMeta.UID = oldMeta.UID
	}
	if !oldMeta.CreationTimestamp.IsZero() {
		newMeta.CreationTimestamp = oldMeta.CreationTimestamp
	}
	if oldMeta.DeletionTimestamp != nil {
		newMeta.DeletionTimestamp = oldMeta.DeletionTimestamp
	}
	if oldMeta.DeletionGracePeriodSeconds != nil && newMeta.DeletionGracePeriodSeconds == nil {
		newMeta.DeletionGracePeriodSeconds = oldMeta.DeletionGracePeriodSeconds
	}
	newMeta.Generation = oldMeta.Generation
}

// clearDeletion drops deletion metadata from an object being created: deletion is
// requested with DELETE only.
func clearDeletion(meta *metav1.ObjectMeta) {
	meta.DeletionTimestamp = nil
	meta.DeletionGracePeriodSeconds = nil
}
