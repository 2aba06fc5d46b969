package registry

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// This file validates a PodSpec the way kube-apiserver's ValidatePodSpec does for the
// fields users get wrong, with the same field paths and messages, so that
// `kubectl create` errors read the same against skiff.

// Allowed values, in the order kube-apiserver lists them in "supported values".
func restartPolicies() []corev1.RestartPolicy {
	return []corev1.RestartPolicy{corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever}
}

func dnsPolicies() []corev1.DNSPolicy {
	return []corev1.DNSPolicy{corev1.DNSClusterFirstWithHostNet, corev1.DNSClusterFirst, corev1.DNSDefault, corev1.DNSNone}
}

func pullPolicies() []corev1.PullPolicy {
	return []corev1.PullPolicy{corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever}
}

// portProtocols() are sorted, as kube lists them from a set.
func portProtocols() []corev1.Protocol {
	return []corev1.Protocol{corev1.ProtocolSCTP, corev1.ProtocolTCP, corev1.ProtocolUDP}
}

func terminationMsgPolicies() []corev1.TerminationMessagePolicy {
	return []corev1.TerminationMessagePolicy{corev1.TerminationMessageReadFile, corev1.TerminationMessageFallbackToLogsOnError}
}

func taintEffects() []corev1.TaintEffect {
	return []corev1.TaintEffect{corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute}
}

func tolerationOperators() []corev1.TolerationOperator {
	return []corev1.TolerationOperator{corev1.TolerationOpEqual, corev1.TolerationOpExists}
}

// isQoSResource: only CPU and memory decide a pod's QoS class and are checked by name.
func isQoSResource(name corev1.ResourceName) bool {
	return name == corev1.ResourceCPU || name == corev1.ResourceMemory
}

// reservedResourcePrefix: extended resources may not use kube's own domain.
const reservedResourcePrefix = "kubernetes.io/"

// validatePodSpec validates spec at fldPath ("spec" for a pod, "spec.template.spec" for
// a ReplicaSet).
func validatePodSpec(spec *corev1.PodSpec, fldPath *field.Path) field.ErrorList {
	volumes, errs := validateVolumes(spec.Volumes, fldPath.Child("volumes"))
	errs = append(errs, validateContainers(spec, volumes, fldPath)...)
	errs = append(errs, requiredOneOf(spec.RestartPolicy, restartPolicies(), fldPath.Child("restartPolicy"))...)
	errs = append(errs, requiredOneOf(spec.DNSPolicy, dnsPolicies(), fldPath.Child("dnsPolicy"))...)
	errs = append(errs, metav1validation.ValidateLabels(spec.NodeSelector, fldPath.Child("nodeSelector"))...)
	errs = append(errs, validateTolerations(spec.Tolerations, fldPath.Child("tolerations"))...)
	errs = append(errs, validateDNSNames(spec, fldPath)...)
	if spec.ActiveDeadlineSeconds != nil {
		if v := *spec.ActiveDeadlineSeconds; v < 1 || v > math.MaxInt32 {
			errs = append(errs, field.Invalid(fldPath.Child("activeDeadlineSeconds"), v, validation.InclusiveRangeError(1, math.MaxInt32)))
		}
	}
	if spec.HostNetwork {
		errs = append(errs, validateHostNetworkPorts(spec, fldPath)...)
	}
	return errs
}

func validateDNSNames(spec *corev1.PodSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if spec.ServiceAccountName != "" {
		for _, msg := range apivalidation.NameIsDNSSubdomain(spec.ServiceAccountName, false) {
			errs = append(errs, field.Invalid(fldPath.Child("serviceAccountName"), spec.ServiceAccountName, msg))
		}
	}
	if spec.NodeName != "" {
		for _, msg := range apivalidation.NameIsDNSSubdomain(spec.NodeName, false) {
			errs = append(errs, field.Invalid(fldPath.Child("nodeName"), spec.NodeName, msg))
		}
	}
	if spec.Hostname != "" {
		for _, msg := range validation.IsDNS1123Label(spec.Hostname) {
			errs = append(errs, field.Invalid(fldPath.Child("hostname"), spec.Hostname, msg))
		}
	}
	if spec.Subdomain != "" {
		for _, msg := range validation.IsDNS1123Label(spec.Subdomain) {
			errs = append(errs, field.Invalid(fldPath.Child("subdomain"), spec.Subdomain, msg))
		}
	}
	return errs
}

// validateVolumes returns the set of valid volume names, for the volumeMounts check.
func validateVolumes(volumes []corev1.Volume, fldPath *field.Path) (sets.Set[string], field.ErrorList) {
	var errs field.ErrorList
	names := sets.New[string]()
	for i := range volumes {
		v := &volumes[i]
		idxPath := fldPath.Index(i)
		namePath := idxPath.Child("name")
		switch {
		case v.Name == "":
			errs = append(errs, field.Required(namePath, ""))
		case names.Has(v.Name):
			errs = append(errs, field.Duplicate(namePath, v.Name))
		default:
			msgs := validation.IsDNS1123Label(v.Name)
			for _, msg := range msgs {
				errs = append(errs, field.Invalid(namePath, v.Name, msg))
			}
			if len(msgs) == 0 {
				names.Insert(v.Name)
			}
		}
		errs = append(errs, validateVolumeSource(&v.VolumeSource, idxPath)...)
	}
	return names, errs
}

func validateVolumeSource(src *corev1.VolumeSource, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	set := setVolumeSources(src)
	switch {
	case len(set) == 0:
		errs = append(errs, field.Required(fldPath, "must specify a volume type"))
	case len(set) > 1:
		for _, name := range set[1:] {
			errs = append(errs, field.Forbidden(fldPath.Child(name), "may not specify more than 1 volume type"))
		}
	}
	if src.HostPath != nil && src.HostPath.Path == "" {
		errs = append(errs, field.Required(fldPath.Child("hostPath", "path"), ""))
	}
	if src.ConfigMap != nil {
		errs = append(errs, validateFileMode(src.ConfigMap.DefaultMode, fldPath.Child("configMap", "defaultMode"))...)
		if src.ConfigMap.Name == "" {
			errs = append(errs, field.Required(fldPath.Child("configMap", "name"), ""))
		}
	}
	if src.Secret != nil {
		errs = append(errs, validateFileMode(src.Secret.DefaultMode, fldPath.Child("secret", "defaultMode"))...)
	}
	if src.EmptyDir != nil && src.EmptyDir.SizeLimit != nil && src.EmptyDir.SizeLimit.Sign() < 0 {
		errs = append(errs, field.Invalid(fldPath.Child("emptyDir", "sizeLimit"), src.EmptyDir.SizeLimit.String(), "SizeLimit field must be a valid resource quantity"))
	}
	return errs
}

// setVolumeSources names the sources set in src by their JSON names.
func setVolumeSources(src *corev1.VolumeSource) []string {
	var set []string
	v := reflect.ValueOf(src).Elem()
	t := v.Type()
	for i := 0; i < v.NumField(); i++ {
		if !v.Field(i).IsNil() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			set = append(set, name)
		}
	}
	return set
}

func validateFileMode(mode *int32, fldPath *field.Path) field.ErrorList {
	if mode != nil && (*mode < 0 || *mode > 0o777) {
		return field.ErrorList{field.Invalid(fldPath, *mode, "must be a number between 0 and 0777 (octal), both inclusive")}
	}
	return nil
}

func validateContainers(spec *corev1.PodSpec, volumes sets.Set[string], fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	names := sets.New[string]()
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		idxPath := fldPath.Child("initContainers").Index(i)
		errs = append(errs, validateContainer(c, names, volumes, idxPath)...)
		errs = append(errs, validateInitContainerOnly(c, idxPath)...)
	}
	if len(spec.Containers) == 0 {
		errs = append(errs, field.Required(fldPath.Child("containers"), ""))
	}
	for i := range spec.Containers {
		errs = append(errs, validateContainer(&spec.Containers[i], names, volumes, fldPath.Child("containers").Index(i))...)
	}
	return append(errs, validateHostPortConflicts(spec.Containers, fldPath.Child("containers"))...)
}

// validateHostPortConflicts: two containers cannot bind the same host port.
func validateHostPortConflicts(containers []corev1.Container, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := sets.New[string]()
	for ci, c := range containers {
		for pi, p := range c.Ports {
			if p.HostPort == 0 {
				continue
			}
			key := fmt.Sprintf("%s/%s/%d", p.Protocol, p.HostIP, p.HostPort)
			if seen.Has(key) {
				errs = append(errs, field.Duplicate(fldPath.Index(ci).Child("ports").Index(pi).Child("hostPort"), key))
			}
			seen.Insert(key)
		}
	}
	return errs
}

// validateInitContainerOnly: only restartable (sidecar) init containers may have probes
// and lifecycle hooks, as the others run to completion before the pod starts.
func validateInitContainerOnly(c *corev1.Container, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if c.RestartPolicy != nil && *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		errs = append(errs, field.NotSupported(fldPath.Child("restartPolicy"), *c.RestartPolicy, []corev1.ContainerRestartPolicy{corev1.ContainerRestartPolicyAlways}))
	}
	if c.RestartPolicy != nil {
		return errs
	}
	const msg = "may not be set for init containers without restartPolicy=Always"
	if c.Lifecycle != nil {
		errs = append(errs, field.Forbidden(fldPath.Child("lifecycle"), msg))
	}
	if c.LivenessProbe != nil {
		errs = append(errs, field.Forbidden(fldPath.Child("livenessProbe"), msg))
	}
	if c.ReadinessProbe != nil {
		errs = append(errs, field.Forbidden(fldPath.Child("readinessProbe"), msg))
	}
	if c.StartupProbe != nil {
		errs = append(errs, field.Forbidden(fldPath.Child("startupProbe"), msg))
	}
	return errs
}

// validateContainer checks one container; names collects the container names seen so
// far in the pod (init and regular containers share one namespace).
func validateContainer(c *corev1.Container, names, volumes sets.Set[string], fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	namePath := fldPath.Child("name")
	switch {
	case c.Name == "":
		errs = append(errs, field.Required(namePath, ""))
	case names.Has(c.Name):
		errs = append(errs, field.Duplicate(namePath, c.Name))
	default:
		for _, msg := range validation.IsDNS1123Label(c.Name) {
			errs = append(errs, field.Invalid(namePath, c.Name, msg))
		}
		names.Insert(c.Name)
	}
	if c.Image == "" {
		errs = append(errs, field.Required(fldPath.Child("image"), ""))
	}
	errs = append(errs, requiredOneOf(c.ImagePullPolicy, pullPolicies(), fldPath.Child("imagePullPolicy"))...)
	errs = append(errs, requiredOneOf(c.TerminationMessagePolicy, terminationMsgPolicies(), fldPath.Child("terminationMessagePolicy"))...)
	errs = append(errs, validateContainerPorts(c.Ports, fldPath.Child("ports"))...)
	errs = append(errs, validateEnv(c.Env, fldPath.Child("env"))...)
	errs = append(errs, validateVolumeMounts(c.VolumeMounts, volumes, fldPath.Child("volumeMounts"))...)
	errs = append(errs, validateResources(&c.Resources, fldPath.Child("resources"))...)
	errs = append(errs, validateProbe(c.LivenessProbe, true, fldPath.Child("livenessProbe"))...)
	errs = append(errs, validateProbe(c.ReadinessProbe, false, fldPath.Child("readinessProbe"))...)
	errs = append(errs, validateProbe(c.StartupProbe, true, fldPath.Child("startupProbe"))...)
	return errs
}

func validateContainerPorts(ports []corev1.ContainerPort, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	names := sets.New[string]()
	for i, port := range ports {
		idxPath := fldPath.Index(i)
		if port.Name != "" {
			for _, msg := range validation.IsValidPortName(port.Name) {
				errs = append(errs, field.Invalid(idxPath.Child("name"), port.Name, msg))
			}
			if names.Has(port.Name) {
				errs = append(errs, field.Duplicate(idxPath.Child("name"), port.Name))
			}
			names.Insert(port.Name)
		}
		if port.ContainerPort == 0 {
			errs = append(errs, field.Required(idxPath.Child("containerPort"), ""))
		} else {
			for _, msg := range validation.IsValidPortNum(int(port.ContainerPort)) {
				errs = append(errs, field.Invalid(idxPath.Child("containerPort"), port.ContainerPort, msg))
			}
		}
		if port.HostPort != 0 {
			for _, msg := range validation.IsValidPortNum(int(port.HostPort)) {
				errs = append(errs, field.Invalid(idxPath.Child("hostPort"), port.HostPort, msg))
			}
		}
		errs = append(errs, requiredOneOf(port.Protocol, portProtocols(), idxPath.Child("protocol"))...)
	}
	return errs
}

func validateHostNetworkPorts(spec *corev1.PodSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, c := range spec.Containers {
		for j, port := range c.Ports {
			if port.HostPort != port.ContainerPort {
				errs = append(errs, field.Invalid(fldPath.Child("containers").Index(i).Child("ports").Index(j).Child("hostPort"),
					port.HostPort, "must match `containerPort` when `hostNetwork` is true"))
			}
		}
	}
	return errs
}

func validateEnv(env []corev1.EnvVar, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, ev := range env {
		idxPath := fldPath.Index(i)
		if ev.Name == "" {
			errs = append(errs, field.Required(idxPath.Child("name"), ""))
		} else {
			for _, msg := range validation.IsRelaxedEnvVarName(ev.Name) {
				errs = append(errs, field.Invalid(idxPath.Child("name"), ev.Name, msg))
			}
		}
		if ev.ValueFrom == nil {
			continue
		}
		from := ev.ValueFrom
		sources := 0
		for _, set := range []bool{from.FieldRef != nil, from.ResourceFieldRef != nil, from.ConfigMapKeyRef != nil, from.SecretKeyRef != nil, from.FileKeyRef != nil} {
			if set {
				sources++
			}
		}
		switch {
		case sources == 0:
			errs = append(errs, field.Invalid(idxPath.Child("valueFrom"), "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef`, `secretKeyRef` or `fileKeyRef`"))
		case ev.Value != "":
			errs = append(errs, field.Invalid(idxPath.Child("valueFrom"), "", "may not be specified when `value` is not empty"))
		case sources > 1:
			errs = append(errs, field.Invalid(idxPath.Child("valueFrom"), "", "may not have more than one field specified at a time"))
		}
	}
	return errs
}

func validateVolumeMounts(mounts []corev1.VolumeMount, volumes sets.Set[string], fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	paths := sets.New[string]()
	for i, m := range mounts {
		idxPath := fldPath.Index(i)
		if m.Name == "" {
			errs = append(errs, field.Required(idxPath.Child("name"), ""))
		} else if !volumes.Has(m.Name) {
			errs = append(errs, field.NotFound(idxPath.Child("name"), m.Name))
		}
		if m.MountPath == "" {
			errs = append(errs, field.Required(idxPath.Child("mountPath"), ""))
		} else if paths.Has(m.MountPath) {
			errs = append(errs, field.Invalid(idxPath.Child("mountPath"), m.MountPath, "must be unique"))
		}
		paths.Insert(m.MountPath)
	}
	return errs
}

// validateResources checks names and quantities and that no request exceeds its limit;
// extended resources (example.com/gpu) and hugepages cannot be overcommitted, so their
// requests must equal their limits.
func validateResources(r *corev1.ResourceRequirements, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	limPath := fldPath.Child("limits")
	for name, q := range r.Limits {
		errs = append(errs, validateResourceQuantity(name, q, limPath.Key(string(name)))...)
	}
	reqPath := fldPath.Child("requests")
	for name, q := range r.Requests {
		errs = append(errs, validateResourceQuantity(name, q, reqPath.Key(string(name)))...)
		limit, ok := r.Limits[name]
		switch {
		case ok && q.Cmp(limit) != 0 && !overcommitAllowed(name):
			errs = append(errs, field.Invalid(reqPath, q.String(), fmt.Sprintf("must be equal to %s limit of %s", name, limit.String())))
		case ok && q.Cmp(limit) > 0:
			// kube names the requests map here, not the key.
			errs = append(errs, field.Invalid(reqPath, q.String(), fmt.Sprintf("must be less than or equal to %s limit of %s", name, limit.String())))
		case !ok && !overcommitAllowed(name):
			errs = append(errs, field.Required(limPath, "Limit must be set for non overcommitable resources"))
		}
	}
	return errs
}

func validateResourceQuantity(name corev1.ResourceName, q resource.Quantity, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsQualifiedName(string(name)) {
		errs = append(errs, field.Invalid(fldPath, name, msg))
	}
	switch {
	case len(errs) > 0:
	case !strings.Contains(string(name), "/"):
		if !isQoSResource(name) && name != corev1.ResourceEphemeralStorage && !strings.HasPrefix(string(name), corev1.ResourceHugePagesPrefix) {
			errs = append(errs, field.Invalid(fldPath, name, "must be a standard resource for containers"))
		}
	case !nativeResource(name) && strings.HasPrefix(string(name), corev1.DefaultResourceRequestsPrefix):
		errs = append(errs, field.Invalid(fldPath, name, "doesn't follow extended resource name standard"))
	}
	if q.Sign() < 0 {
		errs = append(errs, field.Invalid(fldPath, q.String(), "must be greater than or equal to 0"))
	}
	return errs
}

// nativeResource: kube's own resources are unprefixed or in the kubernetes.io domain.
func nativeResource(name corev1.ResourceName) bool {
	return !strings.Contains(string(name), "/") || strings.Contains(string(name), reservedResourcePrefix)
}

// overcommitAllowed: the scheduler may place more requests than exist only for native,
// non-hugepage resources.
func overcommitAllowed(name corev1.ResourceName) bool {
	return nativeResource(name) && !strings.HasPrefix(string(name), corev1.ResourceHugePagesPrefix)
}

func validateProbe(p *corev1.Probe, successMustBeOne bool, fldPath *field.Path) field.ErrorList {
	if p == nil {
		return nil
	}
	errs := validateProbeHandler(&p.ProbeHandler, fldPath)
	for _, f := range []struct {
		name  string
		value int32
	}{
		{"initialDelaySeconds", p.InitialDelaySeconds}, {"timeoutSeconds", p.TimeoutSeconds}, {"periodSeconds", p.PeriodSeconds},
		{"successThreshold", p.SuccessThreshold}, {"failureThreshold", p.FailureThreshold},
	} {
		errs = append(errs, apivalidation.ValidateNonnegativeField(int64(f.value), fldPath.Child(f.name))...)
	}
	if successMustBeOne && p.SuccessThreshold != 1 {
		errs = append(errs, field.Invalid(fldPath.Child("successThreshold"), p.SuccessThreshold, "must be 1"))
	}
	return errs
}

// validateProbeHandler wants exactly one handler; a second one is reported at its own
// path, as kube does.
func validateProbeHandler(h *corev1.ProbeHandler, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	handlers := 0
	check := func(set bool, name string, validate func(*field.Path) field.ErrorList) {
		if !set {
			return
		}
		if handlers > 0 {
			errs = append(errs, field.Forbidden(fldPath.Child(name), "may not specify more than 1 handler type"))
			return
		}
		handlers++
		errs = append(errs, validate(fldPath.Child(name))...)
	}
	none := func(*field.Path) field.ErrorList { return nil }
	check(h.Exec != nil, "exec", none)
	check(h.HTTPGet != nil, "httpGet", func(p *field.Path) field.ErrorList {
		errs := validatePortNumOrName(h.HTTPGet.Port, p.Child("port"))
		if s := h.HTTPGet.Scheme; s != corev1.URISchemeHTTP && s != corev1.URISchemeHTTPS {
			errs = append(errs, field.NotSupported(p.Child("scheme"), s, []corev1.URIScheme{corev1.URISchemeHTTP, corev1.URISchemeHTTPS}))
		}
		return errs
	})
	check(h.TCPSocket != nil, "tcpSocket", func(p *field.Path) field.ErrorList {
		return validatePortNumOrName(h.TCPSocket.Port, p.Child("port"))
	})
	check(h.GRPC != nil, "grpc", func(p *field.Path) field.ErrorList {
		return validatePortNumOrName(intstr.FromInt32(h.GRPC.Port), p.Child("port"))
	})
	if handlers == 0 {
		errs = append(errs, field.Required(fldPath, "must specify a handler type"))
	}
	return errs
}

func validatePortNumOrName(port intstr.IntOrString, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if port.Type == intstr.Int {
		for _, msg := range validation.IsValidPortNum(port.IntValue()) {
			errs = append(errs, field.Invalid(fldPath, port.IntValue(), msg))
		}
		return errs
	}
	for _, msg := range validation.IsValidPortName(port.StrVal) {
		errs = append(errs, field.Invalid(fldPath, port.StrVal, msg))
	}
	return errs
}

func validateTolerations(tolerations []corev1.Toleration, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, t := range tolerations {
		idxPath := fldPath.Index(i)
		if t.Key != "" {
			errs = append(errs, metav1validation.ValidateLabelName(t.Key, idxPath.Child("key"))...)
		}
		if t.Key == "" && t.Operator != corev1.TolerationOpExists {
			errs = append(errs, field.Invalid(idxPath.Child("operator"), t.Operator, "operator must be Exists when `key` is empty, which means \"match all values and all keys\""))
		}
		if t.TolerationSeconds != nil && t.Effect != corev1.TaintEffectNoExecute {
			errs = append(errs, field.Invalid(idxPath.Child("effect"), t.Effect, "effect must be 'NoExecute' when `tolerationSeconds` is set"))
		}
		switch t.Operator {
		case corev1.TolerationOpEqual, "":
			for _, msg := range validation.IsValidLabelValue(t.Value) {
				errs = append(errs, field.Invalid(idxPath.Child("operator"), t.Value, msg))
			}
		case corev1.TolerationOpExists:
			if t.Value != "" {
				errs = append(errs, field.Invalid(idxPath.Child("operator"), t, "value must be empty when `operator` is 'Exists'"))
			}
		default:
			errs = append(errs, field.NotSupported(idxPath.Child("operator"), t.Operator, tolerationOperators()))
		}
		if t.Effect != "" && !slices.Contains(taintEffects(), t.Effect) {
			errs = append(errs, field.NotSupported(idxPath.Child("effect"), t.Effect, taintEffects()))
		}
	}
	return errs
}

// validateImagesTrimmed is a pod-only check: templates may carry a " " image that a
// controller replaces.
func validateImagesTrimmed(spec *corev1.PodSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, list := range []struct {
		name       string
		containers []corev1.Container
	}{{"containers", spec.Containers}, {"initContainers", spec.InitContainers}} {
		for i, c := range list.containers {
			if strings.TrimSpace(c.Image) != c.Image {
				errs = append(errs, field.Invalid(fldPath.Child(list.name).Index(i).Child("image"), c.Image, "must not have leading or trailing whitespace"))
			}
		}
	}
	return errs
}

// requiredOneOf checks an enumerated field that must be set, to one of allowed.
func requiredOneOf[T ~string](v T, allowed []T, fldPath *field.Path) field.ErrorList {
	switch {
	case v == "":
		return field.ErrorList{field.Required(fldPath, "")}
	case !slices.Contains(allowed, v):
		return field.ErrorList{field.NotSupported(fldPath, v, allowed)}
	}
	return nil
}
