package registry

import (
	"context"
	"slices"
	"sort"
	"strconv"
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

func nodeGR() schema.GroupResource { return schema.GroupResource{Resource: "nodes"} }

const (
	// Labels kubectl reads a node's ROLES from.
	nodeRoleLabelPrefix = "node-role.kubernetes.io/"
	nodeRoleLabel       = "kubernetes.io/role"
)

type nodeStrategy struct {
	immediateDelete
	now clock
}

// Default copies capacity to allocatable when the kubelet reports no reservations, and
// keeps the singular spec.podCIDR equal to the first of spec.podCIDRs (the list wins),
// as kube's conversion through its internal type does.
func (nodeStrategy) Default(obj runtime.Object) {
	node := obj.(*corev1.Node)
	switch {
	case len(node.Spec.PodCIDRs) > 0:
		node.Spec.PodCIDR = node.Spec.PodCIDRs[0]
	case node.Spec.PodCIDR != "":
		node.Spec.PodCIDRs = []string{node.Spec.PodCIDR}
	}
	roundUpResources(node.Status.Capacity)
	roundUpResources(node.Status.Allocatable)
	if node.Status.Allocatable == nil && node.Status.Capacity != nil {
		node.Status.Allocatable = node.Status.Capacity.DeepCopy()
	}
}

// PrepareForCreate keeps the status: the kubelet registers its node with the status it
// observed, unlike other resources.
func (s nodeStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	s.Default(obj)
	clearDeletion(&obj.(*corev1.Node).ObjectMeta)
}

func (s nodeStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	s.Default(obj)
	node, oldNode := obj.(*corev1.Node), old.(*corev1.Node)
	keepSystemMeta(&node.ObjectMeta, &oldNode.ObjectMeta)
	node.Status = oldNode.Status
}

func (nodeStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	node := obj.(*corev1.Node)
	return validateNode(node)
}

func validateNode(node *corev1.Node) field.ErrorList {
	errs := validateObjectMeta(&node.ObjectMeta, false, apivalidation.NameIsDNSSubdomain)
	errs = append(errs, validateNodeSpec(&node.Spec, field.NewPath("spec"))...)
	return append(errs, validateNodeStatus(&node.Status, field.NewPath("status"))...)
}

func (nodeStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	node, oldNode := obj.(*corev1.Node), old.(*corev1.Node)
	errs := validateNode(node)
	return append(errs, validateNodeUpdate(node, oldNode)...)
}

// validateNodeUpdate: the pod CIDRs and provider ID are assigned once, as pods and
// routes already use them; addresses must not repeat.
func validateNodeUpdate(node, oldNode *corev1.Node) field.ErrorList {
	errs := validateObjectMetaUpdate(&node.ObjectMeta, &oldNode.ObjectMeta)
	seen := map[corev1.NodeAddress]bool{}
	for i, a := range node.Status.Addresses {
		if seen[a] {
			errs = append(errs, field.Duplicate(field.NewPath("status", "addresses").Index(i), a))
		}
		seen[a] = true
	}
	specPath := field.NewPath("spec")
	if len(oldNode.Spec.PodCIDRs) > 0 && !slices.Equal(node.Spec.PodCIDRs, oldNode.Spec.PodCIDRs) {
		errs = append(errs, field.Forbidden(specPath.Child("podCIDRs"), "node updates may not change podCIDR except from \"\" to valid"))
	}
	switch old, cur := oldNode.Spec.ProviderID, node.Spec.ProviderID; {
	case old != "" && cur != "" && old != cur:
		errs = append(errs, field.Invalid(specPath.Child("providerID"), nil, "field cannot be modified once set"))
	case old != "" && cur == "":
		errs = append(errs, field.Invalid(specPath.Child("providerID"), nil, "field cannot be cleared once set"))
	}
	return errs
}

func validateNodeSpec(spec *corev1.NodeSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	cidrPath := fldPath.Child("podCIDRs")
	families := map[bool]bool{}
	for i, cidr := range spec.PodCIDRs {
		cidrErrs := validation.IsValidCIDR(cidrPath.Index(i), cidr)
		errs = append(errs, cidrErrs...)
		if len(cidrErrs) > 0 {
			continue
		}
		v6 := strings.Contains(cidr, ":")
		if families[v6] {
			errs = append(errs, field.Invalid(cidrPath, spec.PodCIDRs, "may specify no more than one CIDR for each IP family"))
		}
		families[v6] = true
	}
	// kube reports taints under "metadata.taints"; keep its path so messages match.
	return append(errs, validateTaints(spec.Taints, field.NewPath("metadata", "taints"))...)
}

func validateTaints(taints []corev1.Taint, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := map[string]bool{}
	for i, t := range taints {
		idxPath := fldPath.Index(i)
		errs = append(errs, metav1validation.ValidateLabelName(t.Key, idxPath.Child("key"))...)
		for _, msg := range validation.IsValidLabelValue(t.Value) {
			errs = append(errs, field.Invalid(idxPath.Child("value"), t.Value, msg))
		}
		errs = append(errs, requiredOneOf(t.Effect, taintEffects(), idxPath.Child("effect"))...)
		k := t.Key + "\x00" + string(t.Effect)
		if seen[k] {
			dup := field.Duplicate(idxPath, t)
			dup.Detail = "taints must be unique by key and effect pair"
			errs = append(errs, dup)
		}
		seen[k] = true
	}
	return errs
}

func validateNodeStatus(status *corev1.NodeStatus, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, l := range []struct {
		name string
		list corev1.ResourceList
	}{{"capacity", status.Capacity}, {"allocatable", status.Allocatable}} {
		name := l.name
		for res, q := range l.list {
			if q.Sign() < 0 {
				errs = append(errs, field.Invalid(fldPath.Child(name, string(res)), q.String(), "must be greater than or equal to 0"))
			}
		}
	}
	return errs
}

// nodeStatusStrategy serves nodes/status, written by the agent's heartbeat.
type nodeStatusStrategy struct{}

func (nodeStatusStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	node, oldNode := obj.(*corev1.Node), old.(*corev1.Node)
	keepSystemMeta(&node.ObjectMeta, &oldNode.ObjectMeta)
	node.Spec = oldNode.Spec
}

func (nodeStatusStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	node, oldNode := obj.(*corev1.Node), old.(*corev1.Node)
	errs := validateObjectMetaUpdate(&node.ObjectMeta, &oldNode.ObjectMeta)
	return append(errs, validateNodeStatus(&node.Status, field.NewPath("status"))...)
}

func nodeAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	node, ok := obj.(*corev1.Node)
	if !ok {
		return nil, nil, unexpectedType("*corev1.Node", obj)
	}
	f := objectMetaFields(&node.ObjectMeta, false)
	f["spec.unschedulable"] = strconv.FormatBool(node.Spec.Unschedulable)
	return labels.Set(node.Labels), f, nil
}

func nodeColumns() []metav1.TableColumnDefinition {
	info, status := corev1.NodeSystemInfo{}.SwaggerDoc(), corev1.NodeStatus{}.SwaggerDoc()
	return []metav1.TableColumnDefinition{
		nameColumn(),
		{Name: "Status", Type: "string", Description: "The status of the node"},
		{Name: "Roles", Type: "string", Description: "The roles of the node"},
		ageColumn(),
		{Name: "Version", Type: "string", Description: info["kubeletVersion"]},
		{Name: "Internal-IP", Type: "string", Priority: 1, Description: status["addresses"]},
		{Name: "External-IP", Type: "string", Priority: 1, Description: status["addresses"]},
		{Name: "OS-Image", Type: "string", Priority: 1, Description: info["osImage"]},
		{Name: "Kernel-Version", Type: "string", Priority: 1, Description: info["kernelVersion"]},
		{Name: "Container-Runtime", Type: "string", Priority: 1, Description: info["containerRuntimeVersion"]},
	}
}

func (s nodeStrategy) ConvertToTable(_ context.Context, obj runtime.Object) (*metav1.Table, error) {
	return tableOf(obj, s.now, nodeColumns(), nodeItems, nodeRow)
}

func nodeItems(list *corev1.NodeList) []corev1.Node { return list.Items }

func nodeRow(node *corev1.Node, now time.Time) metav1.TableRow {
	info := node.Status.NodeInfo
	kernel := orUnknown(info.KernelVersion)
	if info.Architecture != "" {
		kernel += " (" + info.Architecture + ")"
	}
	return newRow(node, node.Name, nodeStatusCell(node), nodeRolesCell(node), age(now, node.CreationTimestamp), info.KubeletVersion,
		nodeAddress(node, corev1.NodeInternalIP), nodeAddress(node, corev1.NodeExternalIP),
		orUnknown(info.OSImage), kernel, orUnknown(info.ContainerRuntimeVersion))
}

// nodeStatusCell is Ready, NotReady or Unknown (no Ready condition yet), plus
// SchedulingDisabled for a cordoned node.
func nodeStatusCell(node *corev1.Node) string {
	status := "Unknown"
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			status = "NotReady"
			if c.Status == corev1.ConditionTrue {
				status = "Ready"
			}
		}
	}
	if node.Spec.Unschedulable {
		status += ",SchedulingDisabled"
	}
	return status
}

func nodeRolesCell(node *corev1.Node) string {
	roles := map[string]bool{}
	for k, v := range node.Labels {
		switch {
		case strings.HasPrefix(k, nodeRoleLabelPrefix):
			if role := strings.TrimPrefix(k, nodeRoleLabelPrefix); role != "" {
				roles[role] = true
			}
		case k == nodeRoleLabel && v != "":
			roles[v] = true
		}
	}
	if len(roles) == 0 {
		return "<none>"
	}
	list := make([]string, 0, len(roles))
	for r := range roles {
		list = append(list, r)
	}
	sort.Strings(list)
	return strings.Join(list, ",")
}

func nodeAddress(node *corev1.Node, t corev1.NodeAddressType) string {
	for _, a := range node.Status.Addresses {
		if a.Type == t {
			return a.Address
		}
	}
	return "<none>"
}

func orUnknown(s string) string {
	if s == "" {
		return "<unknown>"
	}
	return s
}
