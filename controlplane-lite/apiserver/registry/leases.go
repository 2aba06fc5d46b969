package registry

import (
	"context"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var leaseGR = schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}

// leaseStrategy: a Lease is all spec, rewritten by its holder every few seconds (node
// heartbeats), so it has neither status nor generation.
type leaseStrategy struct{ now clock }

func (leaseStrategy) Default(runtime.Object) {}

func (leaseStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	clearDeletion(&obj.(*coordinationv1.Lease).ObjectMeta)
}

func (leaseStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	keepSystemMeta(&obj.(*coordinationv1.Lease).ObjectMeta, &old.(*coordinationv1.Lease).ObjectMeta)
}

func (leaseStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	lease := obj.(*coordinationv1.Lease)
	errs := validateObjectMeta(&lease.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	return append(errs, validateLeaseSpec(&lease.Spec, field.NewPath("spec"))...)
}

func (leaseStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	lease, oldLease := obj.(*coordinationv1.Lease), old.(*coordinationv1.Lease)
	errs := validateObjectMetaUpdate(&lease.ObjectMeta, &oldLease.ObjectMeta)
	return append(errs, validateLeaseSpec(&lease.Spec, field.NewPath("spec"))...)
}

func validateLeaseSpec(spec *coordinationv1.LeaseSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if d := spec.LeaseDurationSeconds; d != nil && *d <= 0 {
		errs = append(errs, field.Invalid(fldPath.Child("leaseDurationSeconds"), *d, "must be greater than 0"))
	}
	if t := spec.LeaseTransitions; t != nil && *t < 0 {
		errs = append(errs, field.Invalid(fldPath.Child("leaseTransitions"), *t, "must be greater than or equal to 0"))
	}
	if spec.PreferredHolder != nil && *spec.PreferredHolder != "" && spec.Strategy == nil {
		errs = append(errs, field.Forbidden(fldPath.Child("preferredHolder"), "may only be specified if `strategy` is defined"))
	}
	return errs
}

func (leaseStrategy) GracefulDelete(context.Context, runtime.Object, *metav1.DeleteOptions) bool {
	return false
}

func leaseAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	lease, ok := obj.(*coordinationv1.Lease)
	if !ok {
		return nil, nil, unexpectedType("*coordinationv1.Lease", obj)
	}
	return labels.Set(lease.Labels), objectMetaFields(&lease.ObjectMeta, true), nil
}

func leaseColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		nameColumn(),
		{Name: "Holder", Type: "string", Description: coordinationv1.LeaseSpec{}.SwaggerDoc()["holderIdentity"]},
		ageColumn(),
	}
}

func (s leaseStrategy) ConvertToTable(_ context.Context, obj runtime.Object) (*metav1.Table, error) {
	var rows []metav1.TableRow
	switch o := obj.(type) {
	case *coordinationv1.Lease:
		rows = append(rows, leaseRow(o, s.now()))
	case *coordinationv1.LeaseList:
		now := s.now()
		for i := range o.Items {
			rows = append(rows, leaseRow(&o.Items[i], now))
		}
	default:
		return nil, unexpectedType("*coordinationv1.Lease or *coordinationv1.LeaseList", obj)
	}
	return newTable(leaseColumns(), obj, rows), nil
}

func leaseRow(lease *coordinationv1.Lease, now time.Time) metav1.TableRow {
	var holder string
	if lease.Spec.HolderIdentity != nil {
		holder = *lease.Spec.HolderIdentity
	}
	return newRow(lease, lease.Name, holder, age(now, lease.CreationTimestamp))
}
