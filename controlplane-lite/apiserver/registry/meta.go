package registry

import (
	"context"
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

// tableOf is the ConvertToTable of a resource whose objects are *T and whose lists are
// *L: it prints one row for an object, or one per item of a list, reading the clock once
// so that every AGE in a table is measured from the same instant.
func tableOf[T, L any](obj runtime.Object, now clock, columns []metav1.TableColumnDefinition,
	itemsOf func(*L) []T, row func(*T, time.Time) metav1.TableRow) (*metav1.Table, error) {
	var rows []metav1.TableRow
	// any(obj): a runtime.Object cannot be switched on pointers to type parameters.
	switch o := any(obj).(type) {
	case *T:
		rows = append(rows, row(o, now()))
	case *L:
		at, items := now(), itemsOf(o)
		for i := range items {
			rows = append(rows, row(&items[i], at))
		}
	default:
		return nil, unexpectedType(fmt.Sprintf("%T or %T", (*T)(nil), (*L)(nil)), obj)
	}
	return newTable(columns, obj, rows), nil
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

// immediateDelete is the GracefulDelete of every resource but pods: a delete removes
// the object at once.
type immediateDelete struct{}

func (immediateDelete) GracefulDelete(context.Context, runtime.Object, *metav1.DeleteOptions) bool {
	return false
}

// plainData is the Default, PrepareForCreate, PrepareForUpdate and GracefulDelete of
// resources that are plain data, with no defaults, status or generation (configmaps,
// events, leases): only the metadata the server owns needs guarding.
type plainData struct{ immediateDelete }

func (plainData) Default(runtime.Object) {}

func (plainData) PrepareForCreate(_ context.Context, obj runtime.Object) {
	clearDeletion(objectMeta(obj))
}

func (plainData) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	keepSystemMeta(objectMeta(obj), objectMeta(old))
}

// objectMeta returns the ObjectMeta that every served type embeds (its GetObjectMeta is
// promoted from there).
func objectMeta(obj runtime.Object) *metav1.ObjectMeta {
	return obj.(metav1.ObjectMetaAccessor).GetObjectMeta().(*metav1.ObjectMeta)
}

// clearDeletion drops deletion metadata from an object being created: deletion is
// requested with DELETE only.
func clearDeletion(meta *metav1.ObjectMeta) {
	meta.DeletionTimestamp = nil
	meta.DeletionGracePeriodSeconds = nil
}
