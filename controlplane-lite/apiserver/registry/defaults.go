package registry

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// The defaults below follow the SetDefaults_* functions kube-apiserver registers for
// core/v1 (pkg/apis/core/v1/defaults.go): they run when a request body is decoded, so
// they apply to every write, to pods and to pod templates alike. Pod-only defaults
// (enableServiceLinks, requests from limits) and admission defaults (priority,
// default tolerations) live with the pod strategy.

const (
	defaultTerminationGracePeriodSeconds int64 = 30
	defaultSchedulerName                       = corev1.DefaultSchedulerName
	defaultVolumeMode                    int32 = 0o644 // 420, corev1.*VolumeSourceDefaultMode
	defaultTokenExpirationSeconds        int64 = 3600
)

func defaultPodSpec(spec *corev1.PodSpec) {
	// serviceAccount is the deprecated alias of serviceAccountName; kube keeps them equal.
	if spec.ServiceAccountName == "" {
		spec.ServiceAccountName = spec.DeprecatedServiceAccount
	}
	spec.DeprecatedServiceAccount = spec.ServiceAccountName
	if spec.DNSPolicy == "" {
		spec.DNSPolicy = corev1.DNSClusterFirst
	}
	if spec.RestartPolicy == "" {
		spec.RestartPolicy = corev1.RestartPolicyAlways
	}
	if spec.SecurityContext == nil {
		spec.SecurityContext = &corev1.PodSecurityContext{}
	}
	if spec.TerminationGracePeriodSeconds == nil {
		period := defaultTerminationGracePeriodSeconds
		spec.TerminationGracePeriodSeconds = &period
	}
	if spec.SchedulerName == "" {
		spec.SchedulerName = defaultSchedulerName
	}
	for i := range spec.Volumes {
		defaultVolume(&spec.Volumes[i])
	}
	for i := range spec.InitContainers {
		defaultContainer(&spec.InitContainers[i])
	}
	for i := range spec.Containers {
		defaultContainer(&spec.Containers[i])
	}
	for i := range spec.EphemeralContainers {
		// The two types have the same fields; kube defaults them through this conversion.
		defaultContainer((*corev1.Container)(&spec.EphemeralContainers[i].EphemeralContainerCommon))
	}
	roundUpResources(spec.Overhead)
	if spec.Resources != nil {
		roundUpResources(spec.Resources.Limits)
		roundUpResources(spec.Resources.Requests)
	}
}

// defaultHostNetworkPorts sets hostPort to containerPort: with the host's network the
// two are the same port, and the scheduler's port-conflict check reads hostPort. kube
// does this for pods only, not templates.
func defaultHostNetworkPorts(spec *corev1.PodSpec) {
	for _, containers := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range containers {
			for j := range containers[i].Ports {
				if containers[i].Ports[j].HostPort == 0 {
					containers[i].Ports[j].HostPort = containers[i].Ports[j].ContainerPort
				}
			}
		}
	}
}

func defaultContainer(c *corev1.Container) {
	if c.ImagePullPolicy == "" {
		c.ImagePullPolicy = defaultPullPolicy(c.Image)
	}
	if c.TerminationMessagePath == "" {
		c.TerminationMessagePath = corev1.TerminationMessagePathDefault
	}
	if c.TerminationMessagePolicy == "" {
		c.TerminationMessagePolicy = corev1.TerminationMessageReadFile
	}
	for i := range c.Ports {
		if c.Ports[i].Protocol == "" {
			c.Ports[i].Protocol = corev1.ProtocolTCP
		}
	}
	defaultEnv(c.Env)
	roundUpResources(c.Resources.Limits)
	roundUpResources(c.Resources.Requests)
	defaultProbe(c.LivenessProbe)
	defaultProbe(c.ReadinessProbe)
	defaultProbe(c.StartupProbe)
	if c.Lifecycle != nil {
		defaultLifecycleHandler(c.Lifecycle.PostStart)
		defaultLifecycleHandler(c.Lifecycle.PreStop)
	}
}

// defaultPullPolicy is Always for an untagged or ":latest" image, as the tag may move,
// and IfNotPresent otherwise (a digest-only reference has no tag and never moves).
func defaultPullPolicy(image string) corev1.PullPolicy {
	if imageTag(image) == "latest" {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}

// imageTag returns the tag of an image reference, "latest" when it has neither a tag
// nor a digest, and "" when it is pinned by digest only.
func imageTag(image string) string {
	name, _, hasDigest := strings.Cut(image, "@")
	// A ':' after the last '/' separates the tag; one before it is a registry port.
	lastSlash := strings.LastIndex(name, "/")
	if i := strings.LastIndex(name, ":"); i > lastSlash {
		return name[i+1:]
	}
	if hasDigest {
		return ""
	}
	return "latest"
}

func defaultEnv(env []corev1.EnvVar) {
	for i := range env {
		from := env[i].ValueFrom
		if from == nil {
			continue
		}
		if from.FieldRef != nil && from.FieldRef.APIVersion == "" {
			from.FieldRef.APIVersion = "v1"
		}
		if from.FileKeyRef != nil && from.FileKeyRef.Optional == nil {
			from.FileKeyRef.Optional = ptrTo(false)
		}
	}
}

// roundUpResources rounds quantities up to milli units (0.0001 CPU becomes 1m), as kube
// has always stored them.
func roundUpResources(list corev1.ResourceList) {
	const milliScale = -3
	for name, q := range list {
		q.RoundUp(milliScale)
		list[name] = q
	}
}

func defaultProbe(p *corev1.Probe) {
	if p == nil {
		return
	}
	if p.TimeoutSeconds == 0 {
		p.TimeoutSeconds = 1
	}
	if p.PeriodSeconds == 0 {
		p.PeriodSeconds = 10
	}
	if p.SuccessThreshold == 0 {
		p.SuccessThreshold = 1
	}
	if p.FailureThreshold == 0 {
		p.FailureThreshold = 3
	}
	defaultHTTPGet(p.HTTPGet)
	if p.GRPC != nil && p.GRPC.Service == nil {
		service := ""
		p.GRPC.Service = &service
	}
}

func defaultLifecycleHandler(h *corev1.LifecycleHandler) {
	if h != nil {
		defaultHTTPGet(h.HTTPGet)
	}
}

func defaultHTTPGet(a *corev1.HTTPGetAction) {
	if a == nil {
		return
	}
	if a.Path == "" {
		a.Path = "/"
	}
	if a.Scheme == "" {
		a.Scheme = corev1.URISchemeHTTP
	}
}

func defaultVolume(v *corev1.Volume) {
	if volumeSourceEmpty(&v.VolumeSource) {
		v.VolumeSource = corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}
		return
	}
	src := &v.VolumeSource
	if src.HostPath != nil && src.HostPath.Type == nil {
		unset := corev1.HostPathUnset
		src.HostPath.Type = &unset
	}
	if src.Secret != nil && src.Secret.DefaultMode == nil {
		src.Secret.DefaultMode = ptrTo(defaultVolumeMode)
	}
	if src.ConfigMap != nil && src.ConfigMap.DefaultMode == nil {
		src.ConfigMap.DefaultMode = ptrTo(defaultVolumeMode)
	}
	if src.DownwardAPI != nil {
		if src.DownwardAPI.DefaultMode == nil {
			src.DownwardAPI.DefaultMode = ptrTo(defaultVolumeMode)
		}
		defaultDownwardAPIItems(src.DownwardAPI.Items)
	}
	if src.Projected != nil {
		defaultProjected(src.Projected)
	}
	if src.Image != nil && src.Image.PullPolicy == "" {
		src.Image.PullPolicy = defaultPullPolicy(src.Image.Reference)
	}
	defaultLegacyVolumeSources(src)
}

// defaultLegacyVolumeSources fills the defaults of in-tree volume plugins skiff cannot
// mount, so objects read back as they would from kube-apiserver.
func defaultLegacyVolumeSources(src *corev1.VolumeSource) {
	if src.ISCSI != nil && src.ISCSI.ISCSIInterface == "" {
		src.ISCSI.ISCSIInterface = "default"
	}
	if rbd := src.RBD; rbd != nil {
		defaultString(&rbd.RBDPool, "rbd")
		defaultString(&rbd.RadosUser, "admin")
		defaultString(&rbd.Keyring, "/etc/ceph/keyring")
	}
	if az := src.AzureDisk; az != nil {
		if az.CachingMode == nil {
			az.CachingMode = ptrTo(corev1.AzureDataDiskCachingReadWrite)
		}
		if az.FSType == nil {
			az.FSType = ptrTo("ext4")
		}
		if az.ReadOnly == nil {
			az.ReadOnly = ptrTo(false)
		}
		if az.Kind == nil {
			az.Kind = ptrTo(corev1.AzureSharedBlobDisk)
		}
	}
	if sio := src.ScaleIO; sio != nil {
		defaultString(&sio.StorageMode, "ThinProvisioned")
		defaultString(&sio.FSType, "xfs")
	}
}

func defaultString(s *string, v string) {
	if *s == "" {
		*s = v
	}
}

func defaultProjected(p *corev1.ProjectedVolumeSource) {
	if p.DefaultMode == nil {
		p.DefaultMode = ptrTo(defaultVolumeMode)
	}
	for i := range p.Sources {
		s := &p.Sources[i]
		if s.ServiceAccountToken != nil && s.ServiceAccountToken.ExpirationSeconds == nil {
			s.ServiceAccountToken.ExpirationSeconds = ptrTo(defaultTokenExpirationSeconds)
		}
		if s.DownwardAPI != nil {
			defaultDownwardAPIItems(s.DownwardAPI.Items)
		}
	}
}

func defaultDownwardAPIItems(items []corev1.DownwardAPIVolumeFile) {
	for i := range items {
		if items[i].FieldRef != nil && items[i].FieldRef.APIVersion == "" {
			items[i].FieldRef.APIVersion = "v1"
		}
	}
}

// volumeSourceEmpty reports whether no source is set, the case kube defaults to emptyDir.
func volumeSourceEmpty(s *corev1.VolumeSource) bool {
	return *s == corev1.VolumeSource{}
}

// defaultRequestsFromLimits copies a limit into a missing request of the same resource:
// a container that only caps a resource is taken to ask for all of it (this is what
// makes a limits-only pod Guaranteed). kube does this for pods, not for templates.
func defaultRequestsFromLimits(r *corev1.ResourceRequirements) {
	if len(r.Limits) == 0 {
		return
	}
	if r.Requests == nil {
		r.Requests = corev1.ResourceList{}
	}
	for name, limit := range r.Limits {
		if _, ok := r.Requests[name]; !ok {
			r.Requests[name] = limit.DeepCopy()
		}
	}
}

func ptrTo[T any](v T) *T { return &v }
