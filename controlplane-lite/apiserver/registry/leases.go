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

func leaseGR() schema.GroupResource {
	return schema.GroupResource{Group: coordinationv1.GroupName, Resource: "leases"}
}

// leaseStrategy: a Lease is all spec, rewritten by its holder every few seconds (node
// heartbeats), so it has neither status nor generation.
type leaseStrategy struct {
	plainData
	now clock
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
	return tableOf(obj, s.now, leaseColumns(), leaseItems, leaseRow)
}

func leaseItems(list *coordinationv1.LeaseList) []coordinationv1.Lease { return list.Items }

func leaseRow(lease *coordinationv1.Lease, now time.Time) metav1.TableRow {
	var holder string
	if lease.Spec.HolderIdentity != nil {
		holder = *lease.Spec.HolderIdentity
	}
	return newRow(lease, lease.Name, holder, age(now, lease.CreationTimestamp))
}
