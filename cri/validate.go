package cri

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Request validation: what RunPodSandbox and CreateContainer refuse before they create
// anything. A refusal is InvalidArgument (Unimplemented for a valid request skiff cannot
// serve), names the field as the CRI proto spells it, and says what to do. The checks
// are pure but for the stat of a seccomp localhost profile, so that the fuzz targets
// (fuzz_test.go) can run them on any input.

const (
	// runcHandler is the handler name RuntimeClasses commonly give the default runtime;
	// it is served as the default.
	runcHandler = "runc"
	// maxHostnameLen is HOST_NAME_MAX: sethostname(2) refuses longer names.
	maxHostnameLen = 64
	// maxSysctlNameLen is the API server's limit on a sysctl name.
	maxSysctlNameLen = 253
	// maxID is the largest usable UID or GID: (uid_t)-1 means "unchanged" to the kernel.
	maxID   = math.MaxUint32 - 1
	maxPort = 65535
)

// Deprecated seccomp_profile_path values, as containerd's CRI reads them.
const (
	seccompPathRuntimeDefault = "runtime/default"
	seccompPathDockerDefault  = "docker/default"
	seccompPathUnconfined     = "unconfined"
	seccompPathLocalhost      = "localhost/"
)

// namedList is a repeated field, checked in request order.
type namedList struct {
	name string
	list []string
}

// invalidField refuses one request field: what is wrong with it, then what to do.
func invalidField(field, problem, fix string) error {
	return fmt.Errorf("%s %s; %s: %w", field, problem, fix, errdefs.ErrInvalidArgument)
}

// firstErr returns the first failed check, so that a request reports its fields in order.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// validateSandboxRequest checks what RunPodSandbox reads from its request, beyond the
// metadata it checks itself.
func validateSandboxRequest(req *runtimeapi.RunPodSandboxRequest) error {
	cfg := req.GetConfig()
	sc := cfg.GetLinux().GetSecurityContext()
	const scField = "config.linux.security_context"
	_, seccompErr := seccompProfile(scField, sc.GetSeccomp(), sc.GetSeccompProfilePath())
	return firstErr(
		validateRuntimeHandler(req.GetRuntimeHandler()),
		validateHostname(cfg.GetHostname()),
		validateAbsolute("config.log_directory", cfg.GetLogDirectory(), "give the directory the container logs go under as an absolute path"),
		validateDNS(cfg.GetDnsConfig()),
		validatePortMappings(cfg.GetPortMappings()),
		validateSysctls("config.linux.sysctls", cfg.GetLinux().GetSysctls()),
		validateIDs(scField, sc.GetRunAsUser(), sc.GetRunAsGroup(), sc.GetSupplementalGroups()),
		validateNamespaceOptions(scField+".namespace_options", sc.GetNamespaceOptions(), false),
		// The pause container runs without a seccomp profile, so a missing localhost
		// file is no reason to refuse the sandbox; a malformed field is.
		seccompErr,
	)
}

// validateContainerRequest checks what CreateContainer reads from the container's config,
// given the config of the sandbox it goes into.
func validateContainerRequest(cfg *runtimeapi.ContainerConfig, sbCfg *runtimeapi.PodSandboxConfig) error {
	return firstErr(
		validateContainerProcess(cfg),
		validateEnvs(cfg.GetEnvs()),
		validateMounts(cfg.GetMounts()),
		validateResources(cfg.GetLinux().GetResources()),
		validateContainerSecurity(cfg.GetLinux().GetSecurityContext(), sbCfg.GetLinux().GetSecurityContext()),
	)
}

// validateRuntimeHandler accepts the handlers Status reports, and "runc" for the default.
func validateRuntimeHandler(h string) error {
	if h == runcHandler {
		return nil
	}
	handlers := runtimeFeatures{}.runtimeHandlers()
	var names []string
	for _, rh := range handlers {
		if rh.GetName() == h {
			return nil
		}
		names = append(names, strconv.Quote(rh.GetName()))
	}
	return invalidField("runtime_handler", fmt.Sprintf("%q is not served here (runtime handlers: %s, and %q for the default)",
		h, strings.Join(names, ", "), runcHandler),
		"leave runtime_handler empty: drop the pod's runtimeClassName, or give its RuntimeClass the handler \"runc\"")
}

func validateHostname(h string) error {
	const field = "config.hostname"
	if len(h) > maxHostnameLen {
		return invalidField(field, fmt.Sprintf("is %d bytes long, more than the kernel's %d", len(h), maxHostnameLen),
			"use a shorter host name (a DNS label of at most 63 characters)")
	}
	if hasSpaceOrControl(h) {
		return invalidField(field, fmt.Sprintf("%q contains white space or control characters", h), "use a DNS name")
	}
	return nil
}

// validateAbsolute refuses a relative path; empty is allowed (unset).
func validateAbsolute(field, path, fix string) error {
	if path == "" || filepath.IsAbs(path) {
		return nil
	}
	return invalidField(field, fmt.Sprintf("%q is not an absolute path", path), fix)
}

// validateDNS keeps resolv.conf well formed: each server an IP address, no entry
// that would spill into another line or word.
func validateDNS(dns *runtimeapi.DNSConfig) error {
	for i, srv := range dns.GetServers() {
		if _, err := netip.ParseAddr(srv); err != nil {
			return invalidField(fmt.Sprintf("config.dns_config.servers[%d]", i), fmt.Sprintf("%q is not an IP address", srv),
				"list name servers by IP address")
		}
	}
	for _, l := range []namedList{{"searches", dns.GetSearches()}, {"options", dns.GetOptions()}} {
		for i, v := range l.list {
			if hasSpaceOrControl(v) {
				return invalidField(fmt.Sprintf("config.dns_config.%s[%d]", l.name, i),
					fmt.Sprintf("%q contains white space or control characters", v), "give one word per entry")
			}
		}
	}
	return nil
}

func validatePortMappings(ports []*runtimeapi.PortMapping) error {
	for i, pm := range ports {
		field := fmt.Sprintf("config.port_mappings[%d]", i)
		host, ctr := pm.GetHostPort(), pm.GetContainerPort()
		switch {
		case host < 0 || host > maxPort:
			return invalidField(field+".host_port", fmt.Sprintf("%d is not a port number", host),
				"use 1-65535, or 0 for no port on the host")
		case ctr < 0 || ctr > maxPort:
			return invalidField(field+".container_port", fmt.Sprintf("%d is not a port number", ctr), "use 1-65535")
		case host > 0 && ctr == 0:
			return invalidField(field+".container_port", fmt.Sprintf("is missing for host_port %d", host),
				"give the container port the host port forwards to")
		case runtimeapi.Protocol_name[int32(pm.GetProtocol())] == "":
			return invalidField(field+".protocol", fmt.Sprintf("%d is not a protocol", pm.GetProtocol()), "use TCP, UDP or SCTP")
		}
		if ip := pm.GetHostIp(); ip != "" {
			if _, err := netip.ParseAddr(ip); err != nil {
				return invalidField(field+".host_ip", fmt.Sprintf("%q is not an IP address", ip),
					"give an IP address of the host, or leave it empty for all")
			}
		}
	}
	return nil
}

// validateSysctls refuses names no kernel parameter has: runc turns a name into a path
// under /proc/sys, so an empty segment or a stray character is never what was meant.
func validateSysctls(field string, sysctls map[string]string) error {
	for _, name := range slices.Sorted(maps.Keys(sysctls)) {
		if problem := sysctlNameProblem(name); problem != "" {
			return invalidField(fmt.Sprintf("%s[%q]", field, name), problem,
				"name a kernel parameter as sysctl(8) does, e.g. net.ipv4.ip_unprivileged_port_start")
		}
	}
	return nil
}

func sysctlNameProblem(name string) string {
	if name == "" {
		return "is empty"
	}
	if len(name) > maxSysctlNameLen {
		return fmt.Sprintf("is longer than %d bytes", maxSysctlNameLen)
	}
	for _, r := range name {
		if !(r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("._-/", r))) {
			return fmt.Sprintf("contains %q", r)
		}
	}
	// Either separator is allowed ("net/ipv4/conf/eth0.100/forwarding").
	for seg := range strings.SplitSeq(strings.ReplaceAll(name, "/", "."), ".") {
		if seg == "" {
			return "has an empty segment"
		}
	}
	return ""
}

// validateIDs refuses IDs that would wrap around when the spec takes them as uint32.
func validateIDs(field string, user, group *runtimeapi.Int64Value, groups []int64) error {
	bad := func(id int64) bool { return id < 0 || id > maxID }
	const fix = "use an ID in 0-4294967294"
	switch {
	case user != nil && bad(user.GetValue()):
		return invalidField(field+".run_as_user", fmt.Sprintf("%d is not a user ID", user.GetValue()), fix)
	case group != nil && bad(group.GetValue()):
		return invalidField(field+".run_as_group", fmt.Sprintf("%d is not a group ID", group.GetValue()), fix)
	}
	for i, g := range groups {
		if bad(g) {
			return invalidField(fmt.Sprintf("%s.supplemental_groups[%d]", field, i), fmt.Sprintf("%d is not a group ID", g), fix)
		}
	}
	return nil
}

// validateNamespaceOptions refuses modes the enum does not have (they would silently
// mean "a new namespace"), a TARGET PID namespace without its target, and user
// namespaces, which skiff does not implement (Status does not advertise them).
func validateNamespaceOptions(field string, ns *runtimeapi.NamespaceOption, container bool) error {
	for _, m := range []struct {
		name string
		mode runtimeapi.NamespaceMode
	}{{"network", ns.GetNetwork()}, {"pid", ns.GetPid()}, {"ipc", ns.GetIpc()}} {
		if runtimeapi.NamespaceMode_name[int32(m.mode)] == "" {
			return invalidField(field+"."+m.name, fmt.Sprintf("%d is not a namespace mode", m.mode), "use POD, CONTAINER or NODE")
		}
	}
	if container && ns.GetPid() == runtimeapi.NamespaceMode_TARGET && ns.GetTargetId() == "" {
		return invalidField(field+".target_id", "is empty with pid TARGET", "name the container whose PID namespace to join")
	}
	userns := ns.GetUsernsOptions()
	switch {
	case userns == nil || userns.GetMode() == runtimeapi.NamespaceMode_NODE:
		return nil
	case userns.GetMode() == runtimeapi.NamespaceMode_POD:
		return fmt.Errorf("%s.userns_options.mode POD (a pod user namespace, hostUsers: false) is not supported by skiff, "+
			"whose runtime handler does not advertise user_namespaces; run the pod with hostUsers: true: %w",
			field, errdefs.ErrNotImplemented)
	}
	return invalidField(field+".userns_options.mode", fmt.Sprintf("%s is not a user namespace mode", userns.GetMode()),
		"use NODE (hostUsers: true)")
}

// seccompProfile is the seccomp profile a security context asks for: its seccomp field,
// else its deprecated seccomp_profile_path read as containerd's CRI reads it; nil means
// none (unconfined). field prefixes the field names in errors.
func seccompProfile(field string, p *runtimeapi.SecurityProfile, legacy string) (*runtimeapi.SecurityProfile, error) {
	fromPath, err := seccompFromPath(field+".seccomp_profile_path", legacy)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return fromPath, nil
	}
	field += ".seccomp"
	switch p.GetProfileType() {
	case runtimeapi.SecurityProfile_RuntimeDefault, runtimeapi.SecurityProfile_Unconfined:
		return p, nil
	case runtimeapi.SecurityProfile_Localhost:
		if err := validateLocalhostRef(field+".localhost_ref", p.GetLocalhostRef()); err != nil {
			return nil, err
		}
		return p, nil
	}
	return nil, invalidField(field+".profile_type", fmt.Sprintf("%d is not a profile type", p.GetProfileType()),
		"use RuntimeDefault, Unconfined or Localhost")
}

func seccompFromPath(field, path string) (*runtimeapi.SecurityProfile, error) {
	switch path {
	case "":
		return nil, nil
	case seccompPathRuntimeDefault, seccompPathDockerDefault:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}, nil
	case seccompPathUnconfined:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}, nil
	}
	ref, ok := strings.CutPrefix(path, seccompPathLocalhost)
	if !ok {
		return nil, invalidField(field, fmt.Sprintf("%q is not a seccomp profile", path),
			`use "runtime/default", "unconfined" or "localhost/<absolute path>", or better the seccomp field`)
	}
	if err := validateLocalhostRef(field, ref); err != nil {
		return nil, err
	}
	return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: ref}, nil
}

func validateLocalhostRef(field, ref string) error {
	if ref == "" {
		return invalidField(field, "is empty for a Localhost profile", "give the absolute path of the profile on the node")
	}
	return validateAbsolute(field, ref, "give the absolute path of the profile on the node")
}

// requestedSeccomp is the profile withSecurityContext applies, from a validated request.
func requestedSeccomp(sc *runtimeapi.LinuxContainerSecurityContext) *runtimeapi.SecurityProfile {
	p, err := seccompProfile("", sc.GetSeccomp(), sc.GetSeccompProfilePath())
	if err != nil {
		return sc.GetSeccomp() // not validated: withSeccomp judges the field alone
	}
	return p
}

// validateContainerProcess checks what the container's process is made of.
func validateContainerProcess(cfg *runtimeapi.ContainerConfig) error {
	if cfg.GetImage().GetImage() == "" {
		return invalidField("config.image.image", "is empty", "name the image to run (pulled beforehand)")
	}
	if err := validateAbsolute("config.working_dir", cfg.GetWorkingDir(), "give an absolute path in the container, or none for the image's"); err != nil {
		return err
	}
	if p := cfg.GetLogPath(); p != "" && !filepath.IsLocal(p) {
		return invalidField("config.log_path", fmt.Sprintf("%q leaves the sandbox's log_directory", p),
			"give a path relative to log_directory, such as <container name>/0.log")
	}
	for _, l := range []namedList{{"command", cfg.GetCommand()}, {"args", cfg.GetArgs()}} {
		for i, a := range l.list {
			if strings.IndexByte(a, 0) >= 0 {
				return invalidField(fmt.Sprintf("config.%s[%d]", l.name, i), "contains a NUL byte", "remove it: exec cannot pass one")
			}
		}
	}
	if sig := cfg.GetStopSignal(); runtimeapi.Signal_name[int32(sig)] == "" {
		return invalidField("config.stop_signal", fmt.Sprintf("%d is not a signal", sig),
			"use one of the Signal enum's values, or RUNTIME_DEFAULT for the image's")
	}
	return nil
}

func validateEnvs(envs []*runtimeapi.KeyValue) error {
	for i, kv := range envs {
		field := fmt.Sprintf("config.envs[%d]", i)
		switch k := kv.GetKey(); {
		case k == "":
			return invalidField(field+".key", "is empty", "name every environment variable")
		case strings.ContainsAny(k, "=\x00"):
			return invalidField(field+".key", fmt.Sprintf("%q contains '=' or a NUL byte", k), "use a variable name without them")
		case bytes.IndexByte(kv.GetValue(), 0) >= 0:
			return invalidField(field+".value", "contains a NUL byte", "remove it: exec cannot pass one")
		}
	}
	return nil
}

// validateMounts checks host path mounts here and image volumes with validateImageMount,
// before anything is created on the host for them.
func validateMounts(mounts []*runtimeapi.Mount) error {
	const fix = "give absolute paths"
	for i, m := range mounts {
		field := fmt.Sprintf("config.mounts[%d]", i)
		if m == nil {
			return invalidField(field, "is empty", "give container_path and host_path (or image)")
		}
		if isImageMount(m) {
			if err := validateImageMount(m); err != nil {
				return fmt.Errorf("%s: %w", field, err)
			}
			continue
		}
		if m.GetHostPath() == "" {
			return invalidField(field+".host_path", "is empty", "give the host path to mount, or an image")
		}
		if runtimeapi.MountPropagation_name[int32(m.GetPropagation())] == "" {
			return invalidField(field+".propagation", fmt.Sprintf("%d is not a propagation mode", m.GetPropagation()),
				"use PROPAGATION_PRIVATE, PROPAGATION_HOST_TO_CONTAINER or PROPAGATION_BIDIRECTIONAL")
		}
		if err := firstErr(validateAbsolute(field+".host_path", m.GetHostPath(), fix),
			validateAbsolute(field+".container_path", m.GetContainerPath(), fix)); err != nil {
			return err
		}
		if m.GetContainerPath() == "" {
			return invalidField(field+".container_path", "is empty", "give the path to mount at in the container")
		}
	}
	return nil
}

// validateResources refuses values that wrap around or that runc would refuse only
// at start; -1 keeps its meaning of "unlimited" where runc gives it one.
func validateResources(r *runtimeapi.LinuxContainerResources) error {
	const field = "config.linux.resources."
	for _, v := range []struct {
		name     string
		value    int64
		min, max int64
		fix      string
	}{
		{"cpu_period", r.GetCpuPeriod(), 0, math.MaxInt64, "give the CFS period in microseconds, or 0 for the default"},
		{"cpu_quota", r.GetCpuQuota(), -1, math.MaxInt64, "give the CFS quota in microseconds, or 0 for none"},
		{"cpu_shares", r.GetCpuShares(), 0, math.MaxInt64, "give a CPU weight of 2 or more, or 0 for the default"},
		{"memory_limit_in_bytes", r.GetMemoryLimitInBytes(), -1, math.MaxInt64, "give a limit in bytes, or 0 for none"},
		{"memory_swap_limit_in_bytes", r.GetMemorySwapLimitInBytes(), -1, math.MaxInt64, "give a limit in bytes, or 0 for none"},
		{"oom_score_adj", r.GetOomScoreAdj(), -1000, 1000, "use -1000 to 1000"},
	} {
		if v.value < v.min || v.value > v.max {
			return invalidField(field+v.name, fmt.Sprintf("%d is out of range", v.value), v.fix)
		}
	}
	for _, l := range []namedList{{"cpuset_cpus", []string{r.GetCpusetCpus()}}, {"cpuset_mems", []string{r.GetCpusetMems()}}} {
		if set := l.list[0]; strings.Trim(set, "0123456789,-") != "" {
			return invalidField(field+l.name, fmt.Sprintf("%q is not a list of IDs", set), `use the kernel's list format, e.g. "0-3,6"`)
		}
	}
	return nil
}

// validateContainerSecurity checks the container's security context against its sandbox's.
func validateContainerSecurity(sc *runtimeapi.LinuxContainerSecurityContext, sbSC *runtimeapi.LinuxSandboxSecurityContext) error {
	const field = "config.linux.security_context"
	if sc.GetPrivileged() && !sbSC.GetPrivileged() {
		// As containerd's CRI: "no privileged container allowed in sandbox".
		return invalidField(field+".privileged", "is true but the sandbox's "+field+".privileged is false "+
			"(no privileged container in an unprivileged sandbox)",
			"run the pod sandbox privileged too, as the kubelet does when any container of the pod is")
	}
	if err := firstErr(validateIDs(field, sc.GetRunAsUser(), sc.GetRunAsGroup(), sc.GetSupplementalGroups()),
		validateNamespaceOptions(field+".namespace_options", sc.GetNamespaceOptions(), true)); err != nil {
		return err
	}
	p, err := seccompProfile(field, sc.GetSeccomp(), sc.GetSeccompProfilePath())
	if err != nil || sc.GetPrivileged() || p.GetProfileType() != runtimeapi.SecurityProfile_Localhost {
		return err // a privileged container runs without seccomp: its profile is not read
	}
	// Stat what withSeccomp will read: a missing profile is the caller's to fix, and a
	// device such as /dev/zero would never finish reading.
	if fi, err := os.Stat(p.GetLocalhostRef()); err != nil || !fi.Mode().IsRegular() {
		refField := field + ".seccomp.localhost_ref"
		if sc.GetSeccomp() == nil {
			refField = field + ".seccomp_profile_path"
		}
		return invalidField(refField, fmt.Sprintf("%q is not a readable profile file on the node", p.GetLocalhostRef()),
			"install the profile there, or use RuntimeDefault")
	}
	return nil
}

func hasSpaceOrControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) })
}
