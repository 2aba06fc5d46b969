package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strconv"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Paths the kubelet masks or makes read-only in every unprivileged container; CRI runtimes
// apply exactly what they are given, so the defaults come from here.
var (
	defaultMaskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
		"/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
	}
	defaultReadonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

// containerStartInput is what a container config needs beyond the pod spec.
type containerStartInput struct {
	container    *v1.Container
	restartCount int
	imageRef     string
	podIPs       []string
}

// containerConfig builds the CRI config of one container attempt. Errors here are the
// pod's fault (a missing configMap key, a bad volume) and surface as
// CreateContainerConfigError.
func (a *Agent) containerConfig(ctx context.Context, pod *v1.Pod, in containerStartInput) (*runtimeapi.ContainerConfig, error) {
	c := in.container
	envs, err := a.containerEnv(ctx, pod, c, in.podIPs)
	if err != nil {
		return nil, err
	}
	mounts, err := a.containerMounts(ctx, pod, c, in.restartCount)
	if err != nil {
		return nil, err
	}
	hosts, err := a.etcHostsMount(pod, c, in.podIPs)
	if err != nil {
		return nil, err
	}
	if hosts != nil {
		mounts = append(mounts, hosts)
	}
	vars := envMap(envs)
	return &runtimeapi.ContainerConfig{
		Metadata:    &runtimeapi.ContainerMetadata{Name: c.Name, Attempt: uint32(in.restartCount)},
		Image:       &runtimeapi.ImageSpec{Image: in.imageRef, UserSpecifiedImage: c.Image},
		Command:     expandAll(c.Command, vars),
		Args:        expandAll(c.Args, vars),
		WorkingDir:  c.WorkingDir,
		Envs:        envs,
		Mounts:      mounts,
		Labels:      a.containerLabels(pod, c),
		Annotations: containerAnnotations(pod, c, in.restartCount),
		LogPath:     filepath.Join(c.Name, strconv.Itoa(in.restartCount)+".log"),
		Stdin:       c.Stdin,
		StdinOnce:   c.StdinOnce,
		Tty:         c.TTY,
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources:       a.linuxResources(pod, c),
			SecurityContext: containerSecurityContext(pod, c),
		},
	}, nil
}

// containerMounts mounts the termination-message file and the container's volumes.
func (a *Agent) containerMounts(ctx context.Context, pod *v1.Pod, c *v1.Container, restartCount int) ([]*runtimeapi.Mount, error) {
	var mounts []*runtimeapi.Mount
	for i, vm := range c.VolumeMounts {
		m, err := a.volumeMount(ctx, pod, c.Name, i, vm)
		var unsupported errVolumeUnsupported
		if errors.As(err, &unsupported) {
			// Leaving the mount out lets pods that carry volumes they do not use (the
			// service-account token) run; the event says what is missing.
			a.recorder.Eventf(podRef(pod), v1.EventTypeWarning, eventFailedMount, "Skipping mount of %v", err)
			continue
		}
		if err != nil {
			return nil, err
		}
		if m != nil {
			mounts = append(mounts, m)
		}
	}
	if c.TerminationMessagePath != "" {
		host, err := a.terminationMessageFile(pod, c.Name, restartCount)
		if err != nil {
			return nil, err
		}
		mounts = append(mounts, &runtimeapi.Mount{ContainerPath: c.TerminationMessagePath, HostPath: host})
	}
	return mounts, nil
}

// terminationMessageFile creates the empty, world-writable file a container may write its
// termination message to (any user may run in the container).
func (a *Agent) terminationMessageFile(pod *v1.Pod, name string, restartCount int) (string, error) {
	path := a.terminationMessagePath(pod, name, restartCount)
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return "", fmt.Errorf("create termination message dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o666)
	if err != nil {
		return "", fmt.Errorf("create termination message file: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("create termination message file: %w", err)
	}
	// The umask trimmed the mode at creation.
	if err := os.Chmod(path, 0o666); err != nil {
		return "", fmt.Errorf("chmod termination message file: %w", err)
	}
	return path, nil
}

func (a *Agent) terminationMessagePath(pod *v1.Pod, name string, restartCount int) string {
	return filepath.Join(a.podDir(pod), "containers", name, strconv.Itoa(restartCount))
}

func containerSecurityContext(pod *v1.Pod, c *v1.Container) *runtimeapi.LinuxContainerSecurityContext {
	sc := &runtimeapi.LinuxContainerSecurityContext{
		NamespaceOptions: namespaceOptions(pod),
		MaskedPaths:      defaultMaskedPaths,
		ReadonlyPaths:    defaultReadonlyPaths,
		Seccomp:          &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined},
	}
	var seccomp *v1.SeccompProfile
	if psc := pod.Spec.SecurityContext; psc != nil {
		sc.RunAsUser = int64Value(psc.RunAsUser)
		sc.RunAsGroup = int64Value(psc.RunAsGroup)
		sc.SupplementalGroups = psc.SupplementalGroups
		if psc.FSGroup != nil {
			sc.SupplementalGroups = append(sc.SupplementalGroups, *psc.FSGroup)
		}
		seccomp = psc.SeccompProfile
	}
	if csc := c.SecurityContext; csc != nil {
		applyContainerSecurity(sc, csc)
		if csc.SeccompProfile != nil {
			seccomp = csc.SeccompProfile
		}
	}
	if seccomp != nil {
		sc.Seccomp = criSeccomp(seccomp)
	}
	return sc
}

func applyContainerSecurity(sc *runtimeapi.LinuxContainerSecurityContext, csc *v1.SecurityContext) {
	if csc.RunAsUser != nil {
		sc.RunAsUser = int64Value(csc.RunAsUser)
	}
	if csc.RunAsGroup != nil {
		sc.RunAsGroup = int64Value(csc.RunAsGroup)
	}
	if csc.Privileged != nil && *csc.Privileged {
		sc.Privileged = true
		sc.MaskedPaths, sc.ReadonlyPaths = nil, nil
	}
	if csc.ProcMount != nil && *csc.ProcMount == v1.UnmaskedProcMount {
		sc.MaskedPaths, sc.ReadonlyPaths = nil, nil
	}
	if csc.ReadOnlyRootFilesystem != nil {
		sc.ReadonlyRootfs = *csc.ReadOnlyRootFilesystem
	}
	if csc.AllowPrivilegeEscalation != nil {
		sc.NoNewPrivs = !*csc.AllowPrivilegeEscalation
	}
	if caps := csc.Capabilities; caps != nil {
		sc.Capabilities = &runtimeapi.Capability{}
		for _, c := range caps.Add {
			sc.Capabilities.AddCapabilities = append(sc.Capabilities.AddCapabilities, string(c))
		}
		for _, c := range caps.Drop {
			sc.Capabilities.DropCapabilities = append(sc.Capabilities.DropCapabilities, string(c))
		}
	}
}

func criSeccomp(p *v1.SeccompProfile) *runtimeapi.SecurityProfile {
	switch p.Type {
	case v1.SeccompProfileTypeRuntimeDefault:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	case v1.SeccompProfileTypeLocalhost:
		lp := ""
		if p.LocalhostProfile != nil {
			lp = *p.LocalhostProfile
		}
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: lp}
	default:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
	}
}

// containerHash identifies a container spec; a running container whose hash no longer
// matches the spec (its image was changed) is restarted. Resources are left out because
// they may be resized in place.
func containerHash(c *v1.Container) string {
	cc := c.DeepCopy()
	cc.Resources = v1.ResourceRequirements{}
	cc.ResizePolicy = nil
	data, _ := json.Marshal(cc) // a Container always marshals
	h := fnv.New32a()
	h.Write(data)
	return strconv.FormatUint(uint64(h.Sum32()), 16)
}
