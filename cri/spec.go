package cri

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/cap"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/anypb"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// jsonAny wraps a JSON-encoded value as a containerd extension.
func jsonAny(typeName string, v any) (*anypb.Any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", typeName, err)
	}
	return &anypb.Any{TypeUrl: "sh.skiff.cri/" + typeName, Value: data}, nil
}

func withOOMScoreAdj(score int) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Process == nil {
			s.Process = &specs.Process{}
		}
		s.Process.OOMScoreAdj = &score
		return nil
	}
}

func withSysctls(sysctls map[string]string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if len(sysctls) == 0 {
			return nil
		}
		if s.Linux.Sysctl == nil {
			s.Linux.Sysctl = map[string]string{}
		}
		for k, v := range sysctls {
			s.Linux.Sysctl[k] = v
		}
		return nil
	}
}

// containerArgs merges the CRI command/args with the image's entrypoint/cmd the
// way Kubernetes documents it: command replaces the entrypoint (and drops the image
// cmd), args replace the cmd.
func containerArgs(cfg *runtimeapi.ContainerConfig, entrypoint, cmd []string) ([]string, error) {
	command, args := cfg.GetCommand(), cfg.GetArgs()
	if len(command) == 0 {
		if len(args) == 0 {
			args = cmd
		}
		command = entrypoint
	}
	out := append(append([]string{}, command...), args...)
	if len(out) == 0 {
		return nil, fmt.Errorf("no command specified and the image has none: %w", errdefs.ErrInvalidArgument)
	}
	return out, nil
}

// containerEnv merges image env, CRI envs (which win) and HOSTNAME.
func containerEnv(imageEnv []string, envs []*runtimeapi.KeyValue, hostname string) []string {
	var order []string
	values := map[string]string{}
	set := func(k, v string) {
		if _, ok := values[k]; !ok {
			order = append(order, k)
		}
		values[k] = v
	}
	set("PATH", defaultPath)
	if hostname != "" {
		set("HOSTNAME", hostname)
	}
	for _, kv := range imageEnv {
		k, v, _ := strings.Cut(kv, "=")
		set(k, v)
	}
	for _, kv := range envs {
		set(kv.GetKey(), string(kv.GetValue()))
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+values[k])
	}
	return out
}

// specEnv replaces the spec's environment outright (the default spec carries a PATH).
func withEnvReplaced(env []string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		s.Process.Env = env
		return nil
	}
}

// criMounts turns the kubelet's host path mounts into OCI bind mounts, creating
// missing host directories the way the kubelet expects of a runtime.
func criMounts(mounts []*runtimeapi.Mount, readonlyRootfs bool, features runtimeFeatures) ([]specs.Mount, error) {
	var out []specs.Mount
	for _, m := range mounts {
		if isImageMount(m) {
			continue // prepareImageVolumes mounts those
		}
		src := m.GetHostPath()
		if src == "" || !filepath.IsAbs(m.GetContainerPath()) {
			return nil, fmt.Errorf("mount %q -> %q needs absolute paths: %w", src, m.GetContainerPath(), errdefs.ErrInvalidArgument)
		}
		if _, err := os.Stat(src); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(src, 0o755); err != nil {
				return nil, fmt.Errorf("create mount source %s: %w", src, err)
			}
		}
		if resolved, err := filepath.EvalSymlinks(src); err == nil {
			src = resolved
		}
		opts, err := bindOptions(m, features)
		if err != nil {
			return nil, err
		}
		out = append(out, specs.Mount{Destination: m.GetContainerPath(), Source: src, Type: "bind", Options: opts})
	}
	return out, nil
}

// bindOptions are the OCI options of a host path mount. A read-only bind mount is
// read-only at its top only (submounts stay writable) unless recursive_read_only
// asks for runc's "rro", which the kubelet sends only with private propagation: a
// mount propagated in later would not be read-only.
func bindOptions(m *runtimeapi.Mount, features runtimeFeatures) ([]string, error) {
	opts := []string{"rbind", propagationOption(m.GetPropagation())}
	if !m.GetRecursiveReadOnly() {
		if m.GetReadonly() {
			return append(opts, "ro"), nil
		}
		return append(opts, "rw"), nil
	}
	switch {
	case !m.GetReadonly():
		return nil, fmt.Errorf("mount %q: recursive_read_only needs readonly: %w", m.GetContainerPath(), errdefs.ErrInvalidArgument)
	case m.GetPropagation() != runtimeapi.MountPropagation_PROPAGATION_PRIVATE:
		return nil, fmt.Errorf("mount %q: recursive_read_only needs private propagation, not %s: %w",
			m.GetContainerPath(), m.GetPropagation(), errdefs.ErrInvalidArgument)
	case !features.recursiveReadOnly:
		return nil, fmt.Errorf("mount %q: recursive read-only mounts are not supported by runc here: %w",
			m.GetContainerPath(), errdefs.ErrNotImplemented)
	}
	return append(opts, "ro", "rro"), nil
}

// withRootfsPropagation makes the rootfs shared (or slave) when a mount needs it:
// propagation out of a container works only through a shared rootfs.
func withRootfsPropagation(mounts []*runtimeapi.Mount) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		for _, m := range mounts {
			switch m.GetPropagation() {
			case runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:
				s.Linux.RootfsPropagation = "rshared"
				return nil
			case runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
				s.Linux.RootfsPropagation = "rslave"
			}
		}
		return nil
	}
}

func propagationOption(p runtimeapi.MountPropagation) string {
	switch p {
	case runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:
		return "rshared"
	case runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
		return "rslave"
	default:
		return "rprivate"
	}
}

// sandboxFileMounts mounts the sandbox's hostname, hosts and resolv.conf unless the
// kubelet mounts its own file there.
func sandboxFileMounts(dir string, mounts []*runtimeapi.Mount, readonly bool) []specs.Mount {
	taken := map[string]bool{}
	for _, m := range mounts {
		taken[filepath.Clean(m.GetContainerPath())] = true
	}
	mode := "rw"
	if readonly {
		mode = "ro"
	}
	var out []specs.Mount
	for _, name := range []string{"hostname", "hosts", "resolv.conf"} {
		dest := "/etc/" + name
		if taken[dest] {
			continue
		}
		out = append(out, specs.Mount{Destination: dest, Source: filepath.Join(dir, name), Type: "bind",
			Options: []string{"rbind", "rprivate", mode}})
	}
	return out
}

func hasMountAt(mounts []*runtimeapi.Mount, dest string) bool {
	for _, m := range mounts {
		if filepath.Clean(m.GetContainerPath()) == dest {
			return true
		}
	}
	return false
}

// withNamespacePath joins an existing namespace, or the host's when path is empty.
func withNamespacePath(t specs.LinuxNamespaceType, path string) oci.SpecOpts {
	if path == "" {
		return oci.WithHostNamespace(t)
	}
	return oci.WithLinuxNamespace(specs.LinuxNamespace{Type: t, Path: path})
}

// withResources applies CRI Linux resources.
func withResources(r *runtimeapi.LinuxContainerResources, oom oomPolicy) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if r == nil {
			return nil
		}
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		res := s.Linux.Resources
		if res.CPU == nil {
			res.CPU = &specs.LinuxCPU{}
		}
		if r.GetCpuPeriod() != 0 {
			p := uint64(r.GetCpuPeriod())
			res.CPU.Period = &p
		}
		if r.GetCpuQuota() != 0 {
			q := r.GetCpuQuota()
			res.CPU.Quota = &q
		}
		if r.GetCpuShares() != 0 {
			sh := uint64(r.GetCpuShares())
			res.CPU.Shares = &sh
		}
		res.CPU.Cpus = r.GetCpusetCpus()
		res.CPU.Mems = r.GetCpusetMems()
		if r.GetMemoryLimitInBytes() != 0 {
			if res.Memory == nil {
				res.Memory = &specs.LinuxMemory{}
			}
			l := r.GetMemoryLimitInBytes()
			res.Memory.Limit = &l
			if sw := r.GetMemorySwapLimitInBytes(); sw != 0 {
				res.Memory.Swap = &sw
			}
		}
		score := oom.clamp(int(r.GetOomScoreAdj()))
		s.Process.OOMScoreAdj = &score
		return nil
	}
}

// withSecurityContext applies the container's security context.
func withSecurityContext(sc *runtimeapi.LinuxContainerSecurityContext) ([]oci.SpecOpts, error) {
	var opts []oci.SpecOpts
	if sc.GetPrivileged() {
		opts = append(opts, oci.WithPrivileged, oci.WithAllDevicesAllowed, oci.WithHostDevices,
			oci.WithWriteableSysfs, oci.WithWriteableCgroupfs, oci.WithMaskedPaths(nil), oci.WithReadonlyPaths(nil))
	} else {
		if caps := sc.GetCapabilities(); caps != nil {
			add, err := capNames(caps.GetAddCapabilities())
			if err != nil {
				return nil, err
			}
			drop, err := capNames(caps.GetDropCapabilities())
			if err != nil {
				return nil, err
			}
			if containsAll(caps.GetDropCapabilities()) {
				opts = append(opts, oci.WithCapabilities(nil))
			} else {
				opts = append(opts, oci.WithDroppedCapabilities(drop))
			}
			opts = append(opts, oci.WithAddedCapabilities(add))
			if amb, err := capNames(caps.GetAddAmbientCapabilities()); err == nil && len(amb) > 0 {
				opts = append(opts, oci.WithAmbientCapabilities(amb))
			}
		}
		// The kubelet always sends its default lists; without them the spec's defaults stay.
		if len(sc.GetMaskedPaths()) > 0 {
			opts = append(opts, oci.WithMaskedPaths(sc.GetMaskedPaths()))
		}
		if len(sc.GetReadonlyPaths()) > 0 {
			opts = append(opts, oci.WithReadonlyPaths(sc.GetReadonlyPaths()))
		}
	}
	if !sc.GetPrivileged() {
		seccompOpt, err := withSeccomp(requestedSeccomp(sc))
		if err != nil {
			return nil, err
		}
		if seccompOpt != nil {
			opts = append(opts, seccompOpt)
		}
	}
	if sc.GetReadonlyRootfs() {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	// containerd's default spec sets no_new_privs; the CRI field decides either way.
	if sc.GetNoNewPrivs() {
		opts = append(opts, oci.WithNoNewPrivileges)
	} else {
		opts = append(opts, oci.WithNewPrivileges)
	}
	return opts, nil
}

// withSeccomp maps the CRI seccomp profile; unset means unconfined, as in the kubelet's
// default for runtimes.
func withSeccomp(p *runtimeapi.SecurityProfile) (oci.SpecOpts, error) {
	if p == nil {
		// RuntimeDefault is the enum's zero value: only an explicit profile selects it.
		return nil, nil
	}
	switch p.GetProfileType() {
	case runtimeapi.SecurityProfile_RuntimeDefault:
		return seccomp.WithDefaultProfile(), nil
	case runtimeapi.SecurityProfile_Localhost:
		path := p.GetLocalhostRef()
		if !filepath.IsAbs(path) {
			return nil, fmt.Errorf("seccomp localhost profile %q must be an absolute path: %w", path, errdefs.ErrInvalidArgument)
		}
		return seccomp.WithProfile(path), nil
	}
	return nil, nil
}

func containsAll(caps []string) bool {
	for _, c := range caps {
		if strings.EqualFold(c, "ALL") {
			return true
		}
	}
	return false
}

// capNames normalizes CRI capability names ("NET_ADMIN", "ALL") to OCI ones.
func capNames(caps []string) ([]string, error) {
	var out []string
	for _, c := range caps {
		if strings.EqualFold(c, "ALL") {
			// All we hold: asking for more would make runc fail.
			cur, err := cap.Current()
			if err != nil {
				return nil, fmt.Errorf("read current capabilities: %w", err)
			}
			out = append(out, cur...)
			continue
		}
		c = strings.ToUpper(c)
		if !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		out = append(out, c)
	}
	return out, nil
}

// withUser picks the process user: the security context's UID/username, else the image user.
func withUser(sc *runtimeapi.LinuxContainerSecurityContext, imageUser string) []oci.SpecOpts {
	var opts []oci.SpecOpts
	userstr := imageUser
	switch {
	case sc.GetRunAsUser() != nil:
		userstr = strconv.FormatInt(sc.GetRunAsUser().GetValue(), 10)
	case sc.GetRunAsUsername() != "":
		userstr = sc.GetRunAsUsername()
	}
	if sc.GetRunAsGroup() != nil {
		uid, _, _ := strings.Cut(userstr, ":")
		if uid == "" {
			uid = "0"
		}
		userstr = uid + ":" + strconv.FormatInt(sc.GetRunAsGroup().GetValue(), 10)
	}
	if userstr == "" {
		userstr = "0"
	}
	opts = append(opts, oci.WithUser(userstr))
	if sc.GetSupplementalGroupsPolicy() == runtimeapi.SupplementalGroupsPolicy_Strict {
		// Strict: the primary group and the pod's groups only, nothing from the
		// image's /etc/group.
		opts = append(opts, func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
			s.Process.User.AdditionalGids = []uint32{s.Process.User.GID}
			return nil
		})
	} else {
		opts = append(opts, oci.WithAdditionalGIDs(userstr))
	}
	if groups := sc.GetSupplementalGroups(); len(groups) > 0 {
		opts = append(opts, func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
			for _, g := range groups {
				s.Process.User.AdditionalGids = append(s.Process.User.AdditionalGids, uint32(g))
			}
			return nil
		})
	}
	return opts
}

// specUser is the identity the container's first process gets, as the kubelet reads
// it from ContainerStatus.user.
func specUser(spec *oci.Spec) *runtimeapi.ContainerUser {
	if spec == nil || spec.Process == nil {
		return nil
	}
	u := spec.Process.User
	groups := make([]int64, 0, len(u.AdditionalGids))
	for _, g := range u.AdditionalGids {
		groups = append(groups, int64(g))
	}
	return &runtimeapi.ContainerUser{Linux: &runtimeapi.LinuxContainerUser{
		Uid: int64(u.UID), Gid: int64(u.GID), SupplementalGroups: groups,
	}}
}
