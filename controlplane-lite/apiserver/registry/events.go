package registry

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func eventGR() schema.GroupResource { return schema.GroupResource{Resource: "events"} }

// Length limits of new-style (eventTime) events, as kube-apiserver enforces them.
const (
	eventReportingInstanceMax = 128
	eventActionMax            = 128
	eventReasonMax            = 128
	eventNoteMax              = 1024
)

// eventStrategy serves core/v1 events. Events have no spec/status split and no
// generation; kube-apiserver also expires them from etcd after an hour (a storage TTL).
type eventStrategy struct {
	plainData
	now clock
}

func (eventStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return validateEvent(obj.(*corev1.Event))
}

func (eventStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	ev, oldEv := obj.(*corev1.Event), old.(*corev1.Event)
	return append(validateObjectMetaUpdate(&ev.ObjectMeta, &oldEv.ObjectMeta), validateEvent(ev)...)
}

// validateEvent checks the event's namespace against its object and, for new-style
// events (eventTime set), the reporting fields core/v1 calls reportingComponent.
func validateEvent(ev *corev1.Event) field.ErrorList {
	errs := apivalidation.ValidateObjectMetaAccessor(&ev.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	nsPath := field.NewPath("involvedObject", "namespace")
	objNS := ev.InvolvedObject.Namespace
	if ev.EventTime.IsZero() {
		// An event about a cluster-scoped object lives in "default" (or nowhere).
		if (objNS == "" && ev.Namespace != metav1.NamespaceNone && ev.Namespace != metav1.NamespaceDefault) ||
			(objNS != "" && objNS != ev.Namespace) {
			errs = append(errs, field.Invalid(nsPath, objNS, "does not match event.namespace"))
		}
	} else {
		if objNS == "" && ev.Namespace != metav1.NamespaceDefault && ev.Namespace != metav1.NamespaceSystem {
			errs = append(errs, field.Invalid(nsPath, objNS, "does not match event.namespace"))
		}
		errs = append(errs, validateNewStyleEvent(ev)...)
	}
	for _, msg := range validation.IsDNS1123Subdomain(ev.Namespace) {
		errs = append(errs, field.Invalid(field.NewPath("namespace"), ev.Namespace, msg))
	}
	return errs
}

func validateNewStyleEvent(ev *corev1.Event) field.ErrorList {
	var errs field.ErrorList
	controllerPath := field.NewPath("reportingComponent")
	if ev.ReportingController == "" {
		errs = append(errs, field.Required(controllerPath, ""))
	} else {
		errs = append(errs, metav1validation.ValidateLabelName(ev.ReportingController, controllerPath)...)
	}
	errs = append(errs, requiredMax(ev.ReportingInstance, eventReportingInstanceMax, field.NewPath("reportingInstance"))...)
	errs = append(errs, requiredMax(ev.Action, eventActionMax, field.NewPath("action"))...)
	errs = append(errs, requiredMax(ev.Reason, eventReasonMax, field.NewPath("reason"))...)
	if len(ev.Message) > eventNoteMax {
		errs = append(errs, field.Invalid(field.NewPath("message"), "", fmt.Sprintf("can have at most %v characters", eventNoteMax)))
	}
	return errs
}

func requiredMax(v string, maxLen int, fldPath *field.Path) field.ErrorList {
	switch {
	case v == "":
		return field.ErrorList{field.Required(fldPath, "")}
	case len(v) > maxLen:
		return field.ErrorList{field.Invalid(fldPath, "", fmt.Sprintf("can have at most %v characters", maxLen))}
	}
	return nil
}

// eventAttrs returns kube's event fields; `kubectl describe` lists a pod's events with
// involvedObject.name/namespace/uid/kind.
func eventAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	ev, ok := obj.(*corev1.Event)
	if !ok {
		return nil, nil, unexpectedType("*corev1.Event", obj)
	}
	f := objectMetaFields(&ev.ObjectMeta, true)
	source := ev.Source.Component
	if source == "" {
		source = ev.ReportingController
	}
	io := ev.InvolvedObject
	for k, v := range map[string]string{
		"involvedObject.kind":            io.Kind,
		"involvedObject.namespace":       io.Namespace,
		"involvedObject.name":            io.Name,
		"involvedObject.uid":             string(io.UID),
		"involvedObject.apiVersion":      io.APIVersion,
		"involvedObject.resourceVersion": io.ResourceVersion,
		"involvedObject.fieldPath":       io.FieldPath,
		"reason":                         ev.Reason,
		"reportingComponent":             ev.ReportingController,
		"source":                         source,
		"type":                           ev.Type,
	} {
		f[k] = v
	}
	return labels.Set(ev.Labels), f, nil
}

func eventColumns() []metav1.TableColumnDefinition {
	doc, ref := corev1.Event{}.SwaggerDoc(), corev1.ObjectReference{}.SwaggerDoc()
	return []metav1.TableColumnDefinition{
		{Name: "Last Seen", Type: "string", Description: doc["lastTimestamp"]},
		{Name: "Type", Type: "string", Description: doc["type"]},
		{Name: "Reason", Type: "string", Description: doc["reason"]},
		{Name: "Object", Type: "string", Description: doc["involvedObject"]},
		{Name: "Subobject", Type: "string", Priority: 1, Description: ref["fieldPath"]},
		{Name: "Source", Type: "string", Priority: 1, Description: doc["source"]},
		{Name: "Message", Type: "string", Description: doc["message"]},
		{Name: "First Seen", Type: "string", Priority: 1, Description: doc["firstTimestamp"]},
		{Name: "Count", Type: "string", Priority: 1, Description: doc["count"]},
		{Name: "Name", Type: "string", Priority: 1, Format: "name", Description: metav1.ObjectMeta{}.SwaggerDoc()["name"]},
	}
}

func (s eventStrategy) ConvertToTable(_ context.Context, obj runtime.Object) (*metav1.Table, error) {
	return tableOf(obj, s.now, eventColumns(), eventItems, eventRow)
}

func eventItems(list *corev1.EventList) []corev1.Event { return list.Items }

// eventRow prints old-style (first/lastTimestamp, count) and new-style (eventTime,
// series) events alike.
func eventRow(ev *corev1.Event, now time.Time) metav1.TableRow {
	first := age(now, ev.FirstTimestamp)
	if ev.FirstTimestamp.IsZero() {
		first = microAge(now, ev.EventTime)
	}
	last := age(now, ev.LastTimestamp)
	if ev.LastTimestamp.IsZero() {
		last = first
	}
	count := ev.Count
	if ev.Series != nil {
		last = microAge(now, ev.Series.LastObservedTime)
		count = ev.Series.Count
	} else if count == 0 {
		count = 1 // a new-style singleton event
	}
	target := strings.ToLower(ev.InvolvedObject.Kind)
	if ev.InvolvedObject.Name != "" {
		target += "/" + ev.InvolvedObject.Name
	}
	return newRow(ev, last, ev.Type, ev.Reason, target, ev.InvolvedObject.FieldPath,
		eventSource(ev), strings.TrimSpace(ev.Message), first, int64(count), ev.Name)
}

// eventSource is "component, host", falling back to the new-style reporting fields.
func eventSource(ev *corev1.Event) string {
	component, instance := ev.Source.Component, ev.Source.Host
	if component == "" {
		component = ev.ReportingController
	}
	if instance == "" {
		instance = ev.ReportingInstance
	}
	if instance == "" {
		return component
	}
	return component + ", " + instance
}
