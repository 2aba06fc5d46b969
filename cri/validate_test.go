package cri

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2/ktesting"
)

// invalidCase is a request validation must refuse with err (InvalidArgument if nil),
// naming field in the message.
type invalidCase struct {
	name  string
	field string
	err   error
}

func wantRefusal(t *testing.T, tc invalidCase, err error) {
	t.Helper()
	want := tc.err
	if want == nil {
		want = errdefs.ErrInvalidArgument
	}
	if !errors.Is(err, want) {
		t.Errorf("%s: err = %v, want %v", tc.name, err, want)
		return
	}
	if !strings.Contains(err.Error(), tc.field) {
		t.Errorf("%s: %q does not name %s", tc.name, err, tc.field)
	}
	// Image volume errors (validateImageMount) say what the field must be instead.
	if !strings.Contains(err.Error(), "; ") && !strings.Contains(err.Error(), " must ") {
		t.Errorf("%s: %q does not say what to do", tc.name, err)
	}
}

// seccompFile writes a profile the way critest does and returns its path.
func seccompFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "block-chmod.json")
	if err := os.WriteFile(p, []byte(`{"defaultAction":"SCMP_ACT_ALLOW"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func sandboxSC(cfg *runtimeapi.PodSandboxConfig) *runtimeapi.LinuxSandboxSecurityContext {
	if cfg.Linux == nil {
		cfg.Linux = &runtimeapi.LinuxPodSandboxConfig{}
	}
	if cfg.Linux.SecurityContext == nil {
		cfg.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{}
	}
	return cfg.Linux.SecurityContext
}

func TestValidateSandboxRequest(t *testing.T) {
	profile := seccompFile(t)
	type mutate = func(*runtimeapi.RunPodSandboxRequest)
	valid := map[string]mutate{
		"integration pod": func(*runtimeapi.RunPodSandboxRequest) {},
		"runc handler":    func(r *runtimeapi.RunPodSandboxRequest) { r.RuntimeHandler = "runc" },
		"no linux, no dns": func(r *runtimeapi.RunPodSandboxRequest) {
			r.Config.Linux, r.Config.DnsConfig, r.Config.Hostname = nil, nil, ""
		},
		"host network, sysctls, ids": func(r *runtimeapi.RunPodSandboxRequest) {
			sc := sandboxSC(r.Config)
			sc.NamespaceOptions = &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_CONTAINER,
				UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE}}
			sc.RunAsUser, sc.RunAsGroup, sc.SupplementalGroups = &runtimeapi.Int64Value{Value: 65535}, &runtimeapi.Int64Value{}, []int64{1000}
			r.Config.Linux.Sysctls = map[string]string{"kernel.shm_rmid_forced": "1", "net/ipv4/conf/eth0.100/forwarding": "1"}
		},
		"port without host port, ipv6 dns": func(r *runtimeapi.RunPodSandboxRequest) {
			r.Config.PortMappings = append(r.Config.PortMappings, &runtimeapi.PortMapping{ContainerPort: 53, Protocol: runtimeapi.Protocol_SCTP},
				&runtimeapi.PortMapping{ContainerPort: 443, HostPort: 8443, HostIp: "::1"})
			r.Config.DnsConfig.Servers = append(r.Config.DnsConfig.Servers, "fe80::1%eth0")
		},
		"seccomp localhost (critest)": func(r *runtimeapi.RunPodSandboxRequest) {
			sandboxSC(r.Config).Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: profile}
		},
		"seccomp default, legacy path": func(r *runtimeapi.RunPodSandboxRequest) {
			sc := sandboxSC(r.Config)
			sc.Seccomp, sc.SeccompProfilePath = &runtimeapi.SecurityProfile{}, "docker/default"
		},
		"privileged": func(r *runtimeapi.RunPodSandboxRequest) { sandboxSC(r.Config).Privileged = true },
	}
	for name, m := range valid {
		req := &runtimeapi.RunPodSandboxRequest{Config: podConfig("web", "/var/log/pods/web")}
		m(req)
		if err := validateSandboxRequest(req); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}

	sc := func(f func(*runtimeapi.LinuxSandboxSecurityContext)) mutate {
		return func(r *runtimeapi.RunPodSandboxRequest) { f(sandboxSC(r.Config)) }
	}
	ns := func(f func(*runtimeapi.NamespaceOption)) mutate {
		return sc(func(s *runtimeapi.LinuxSandboxSecurityContext) {
			s.NamespaceOptions = &runtimeapi.NamespaceOption{}
			f(s.NamespaceOptions)
		})
	}
	port := func(pm *runtimeapi.PortMapping) mutate {
		return func(r *runtimeapi.RunPodSandboxRequest) { r.Config.PortMappings = append(r.Config.PortMappings, pm) }
	}
	sysctl := func(name string) mutate {
		return func(r *runtimeapi.RunPodSandboxRequest) { r.Config.Linux.Sysctls = map[string]string{name: "1"} }
	}
	for _, tc := range []struct {
		invalidCase
		mutate mutate
	}{
		{invalidCase{"handler", `runtime_handler "kata" is not served here (runtime handlers: "", and "runc"`, nil},
			func(r *runtimeapi.RunPodSandboxRequest) { r.RuntimeHandler = "kata" }},
		{invalidCase{"long hostname", "config.hostname", nil},
			func(r *runtimeapi.RunPodSandboxRequest) { r.Config.Hostname = strings.Repeat("h", 65) }},
		{invalidCase{"hostname with newline", "config.hostname", nil},
			func(r *runtimeapi.RunPodSandboxRequest) { r.Config.Hostname = "web\n10.0.0.1 evil" }},
		{invalidCase{"relative log directory", "config.log_directory", nil},
			func(r *runtimeapi.RunPodSandboxRequest) { r.Config.LogDirectory = "logs" }},
		{invalidCase{"dns server name", "config.dns_config.servers[1]", nil},
			func(r *runtimeapi.RunPodSandboxRequest) {
				r.Config.DnsConfig.Servers = []string{"1.1.1.1", "dns.example"}
			}},
		{invalidCase{"dns search injection", "config.dns_config.searches[0]", nil},
			func(r *runtimeapi.RunPodSandboxRequest) {
				r.Config.DnsConfig.Searches = []string{"a\nnameserver 6.6.6.6"}
			}},
		{invalidCase{"dns option space", "config.dns_config.options[0]", nil},
			func(r *runtimeapi.RunPodSandboxRequest) { r.Config.DnsConfig.Options = []string{"ndots:5 rotate"} }},
		{invalidCase{"host port range", "config.port_mappings[1].host_port", nil},
			port(&runtimeapi.PortMapping{ContainerPort: 80, HostPort: 70000})},
		{invalidCase{"negative host port", "config.port_mappings[1].host_port", nil},
			port(&runtimeapi.PortMapping{ContainerPort: 80, HostPort: -1})},
		{invalidCase{"container port range", "config.port_mappings[1].container_port", nil},
			port(&runtimeapi.PortMapping{ContainerPort: 65536})},
		{invalidCase{"host port without container port", "config.port_mappings[1].container_port is missing for host_port 8080", nil},
			port(&runtimeapi.PortMapping{HostPort: 8080})},
		{invalidCase{"protocol", "config.port_mappings[1].protocol", nil},
			port(&runtimeapi.PortMapping{ContainerPort: 80, Protocol: 9})},
		{invalidCase{"host ip", "config.port_mappings[1].host_ip", nil},
			port(&runtimeapi.PortMapping{ContainerPort: 80, HostPort: 80, HostIp: "localhost"})},
		{invalidCase{"empty sysctl", `config.linux.sysctls[""]`, nil}, sysctl("")},
		{invalidCase{"sysctl dots", `config.linux.sysctls["net..core"]`, nil}, sysctl("net..core")},
		{invalidCase{"sysctl escape", `config.linux.sysctls["kernel/../../etc"]`, nil}, sysctl("kernel/../../etc")},
		{invalidCase{"sysctl char", `config.linux.sysctls["kernel.shm max"]`, nil}, sysctl("kernel.shm max")},
		{invalidCase{"sysctl long", "config.linux.sysctls", nil}, sysctl(strings.Repeat("a.", 127) + "b")},
		{invalidCase{"negative uid", "config.linux.security_context.run_as_user", nil},
			sc(func(s *runtimeapi.LinuxSandboxSecurityContext) { s.RunAsUser = &runtimeapi.Int64Value{Value: -1} })},
		{invalidCase{"gid too big", "config.linux.security_context.run_as_group", nil},
			sc(func(s *runtimeapi.LinuxSandboxSecurityContext) { s.RunAsGroup = &runtimeapi.Int64Value{Value: 1 << 32} })},
		{invalidCase{"supplemental group", "config.linux.security_context.supplemental_groups[1]", nil},
			sc(func(s *runtimeapi.LinuxSandboxSecurityContext) { s.SupplementalGroups = []int64{1, -5} })},
		{invalidCase{"namespace mode", "config.linux.security_context.namespace_options.ipc", nil},
			ns(func(n *runtimeapi.NamespaceOption) { n.Ipc = 7 })},
		{invalidCase{"userns pod", "config.linux.security_context.namespace_options.userns_options.mode POD", errdefs.ErrNotImplemented},
			ns(func(n *runtimeapi.NamespaceOption) {
				n.UsernsOptions = &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD}
			})},
		{invalidCase{"userns target", "config.linux.security_context.namespace_options.userns_options.mode", nil},
			ns(func(n *runtimeapi.NamespaceOption) {
				n.UsernsOptions = &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_TARGET}
			})},
		{invalidCase{"seccomp type", "config.linux.security_context.seccomp.profile_type", nil},
			sc(func(s *runtimeapi.LinuxSandboxSecurityContext) {
				s.Seccomp = &runtimeapi.SecurityProfile{ProfileType: 5}
			})},
		{invalidCase{"seccomp empty ref", "config.linux.security_context.seccomp.localhost_ref", nil},
			sc(func(s *runtimeapi.LinuxSandboxSecurityContext) {
				s.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost}
			})},
		{invalidCase{"seccomp relative ref", "config.linux.security_context.seccomp.localhost_ref", nil},
			sc(func(s *runtimeapi.LinuxSandboxSecurityContext) {
				s.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "profiles/audit.json"}
			})},
		{invalidCase{"legacy seccomp", "config.linux.security_context.seccomp_profile_path", nil},
			sc(func(s *runtimeapi.LinuxSandboxSecurityContext) { s.SeccompProfilePath = "runtime/strict" })},
		{invalidCase{"legacy seccomp relative", "config.linux.security_context.seccomp_profile_path", nil},
			sc(func(s *runtimeapi.LinuxSandboxSecurityContext) { s.SeccompProfilePath = "localhost/audit.json" })},
	} {
		req := &runtimeapi.RunPodSandboxRequest{Config: podConfig("web", "/var/log/pods/web")}
		tc.mutate(req)
		wantRefusal(t, tc.invalidCase, validateSandboxRequest(req))
	}
}

// containerRequest is a container like the integration tests' c1 in podConfig's sandbox.
func containerRequest() (*runtimeapi.ContainerConfig, *runtimeapi.PodSandboxConfig) {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "c1"},
		Image:    &runtimeapi.ImageSpec{Image: "busybox"},
		Command:  []string{"sh", "-c", "echo hello"},
		Envs:     []*runtimeapi.KeyValue{{Key: "FOO", Value: []byte("bar")}, {Key: "EMPTY"}},
		LogPath:  "c1/0.log",
		Mounts: []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: "/var/lib/data", Readonly: true},
			{ContainerPath: "/mnt/iv", Readonly: true, Image: &runtimeapi.ImageSpec{Image: "busybox"}, ImageSubPath: "etc"}},
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources: &runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512,
				MemoryLimitInBytes: 64 << 20, OomScoreAdj: -997, CpusetCpus: "0-1,3"},
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				RunAsUser:        &runtimeapi.Int64Value{Value: 1000},
				NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER},
				Capabilities:     &runtimeapi.Capability{DropCapabilities: []string{"ALL"}},
				Seccomp:          &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
			},
		},
	}, podConfig("web", "/var/log/pods/web")
}

func TestValidateContainerRequest(t *testing.T) {
	profile := seccompFile(t)
	type mutate = func(*runtimeapi.ContainerConfig, *runtimeapi.PodSandboxConfig)
	localhost := func(ref string) *runtimeapi.SecurityProfile {
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: ref}
	}
	valid := map[string]mutate{
		"integration container": func(*runtimeapi.ContainerConfig, *runtimeapi.PodSandboxConfig) {},
		"bare": func(c *runtimeapi.ContainerConfig, _ *runtimeapi.PodSandboxConfig) {
			c.Linux, c.Mounts, c.Envs, c.LogPath = nil, nil, nil, ""
		},
		"privileged in a privileged sandbox, missing profile ignored": func(c *runtimeapi.ContainerConfig, sb *runtimeapi.PodSandboxConfig) {
			sandboxSC(sb).Privileged = true
			c.Linux.SecurityContext.Privileged = true
			c.Linux.SecurityContext.Seccomp = localhost("/nonexistent/profile.json")
		},
		"seccomp localhost (critest)": func(c *runtimeapi.ContainerConfig, _ *runtimeapi.PodSandboxConfig) {
			c.Linux.SecurityContext.Seccomp = localhost(profile)
		},
		"legacy seccomp localhost": func(c *runtimeapi.ContainerConfig, _ *runtimeapi.PodSandboxConfig) {
			c.Linux.SecurityContext.Seccomp, c.Linux.SecurityContext.SeccompProfilePath = nil, "localhost/"+profile
		},
		"unlimited and target": func(c *runtimeapi.ContainerConfig, _ *runtimeapi.PodSandboxConfig) {
			c.Linux.Resources.CpuQuota, c.Linux.Resources.MemoryLimitInBytes = -1, -1
			c.Linux.SecurityContext.NamespaceOptions = &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_TARGET, TargetId: "abc"}
			c.StopSignal = runtimeapi.Signal_SIGNAL_SIGUSR1
			c.WorkingDir = "/srv"
		},
	}
	for name, m := range valid {
		c, sb := containerRequest()
		m(c, sb)
		if err := validateContainerRequest(c, sb); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}

	sc := func(f func(*runtimeapi.LinuxContainerSecurityContext)) mutate {
		return func(c *runtimeapi.ContainerConfig, _ *runtimeapi.PodSandboxConfig) { f(c.Linux.SecurityContext) }
	}
	res := func(f func(*runtimeapi.LinuxContainerResources)) mutate {
		return func(c *runtimeapi.ContainerConfig, _ *runtimeapi.PodSandboxConfig) { f(c.Linux.Resources) }
	}
	cfg := func(f func(*runtimeapi.ContainerConfig)) mutate {
		return func(c *runtimeapi.ContainerConfig, _ *runtimeapi.PodSandboxConfig) { f(c) }
	}
	for _, tc := range []struct {
		invalidCase
		mutate mutate
	}{
		{invalidCase{"privileged in an unprivileged sandbox",
			"config.linux.security_context.privileged is true but the sandbox's config.linux.security_context.privileged is false", nil},
			sc(func(s *runtimeapi.LinuxContainerSecurityContext) { s.Privileged = true })},
		{invalidCase{"no image", "config.image.image", nil}, cfg(func(c *runtimeapi.ContainerConfig) { c.Image = nil })},
		{invalidCase{"relative working dir", "config.working_dir", nil}, cfg(func(c *runtimeapi.ContainerConfig) { c.WorkingDir = "srv" })},
		{invalidCase{"log path escapes", "config.log_path", nil}, cfg(func(c *runtimeapi.ContainerConfig) { c.LogPath = "../../etc/cron.d/x" })},
		{invalidCase{"absolute log path", "config.log_path", nil}, cfg(func(c *runtimeapi.ContainerConfig) { c.LogPath = "/tmp/x.log" })},
		{invalidCase{"NUL in args", "config.args[1]", nil}, cfg(func(c *runtimeapi.ContainerConfig) { c.Args = []string{"a", "b\x00"} })},
		{invalidCase{"stop signal", "config.stop_signal", nil}, cfg(func(c *runtimeapi.ContainerConfig) { c.StopSignal = 99 })},
		{invalidCase{"empty env key", "config.envs[2].key", nil},
			cfg(func(c *runtimeapi.ContainerConfig) { c.Envs = append(c.Envs, &runtimeapi.KeyValue{Value: []byte("x")}) })},
		{invalidCase{"nil env", "config.envs[2].key", nil}, cfg(func(c *runtimeapi.ContainerConfig) { c.Envs = append(c.Envs, nil) })},
		{invalidCase{"env key with =", "config.envs[2].key", nil},
			cfg(func(c *runtimeapi.ContainerConfig) { c.Envs = append(c.Envs, &runtimeapi.KeyValue{Key: "A=B"}) })},
		{invalidCase{"NUL in env value", "config.envs[2].value", nil},
			cfg(func(c *runtimeapi.ContainerConfig) {
				c.Envs = append(c.Envs, &runtimeapi.KeyValue{Key: "A", Value: []byte{'x', 0}})
			})},
		{invalidCase{"nil mount", "config.mounts[2]", nil}, cfg(func(c *runtimeapi.ContainerConfig) { c.Mounts = append(c.Mounts, nil) })},
		{invalidCase{"relative host path", "config.mounts[2].host_path", nil},
			cfg(func(c *runtimeapi.ContainerConfig) {
				c.Mounts = append(c.Mounts, &runtimeapi.Mount{ContainerPath: "/x", HostPath: "data"})
			})},
		{invalidCase{"no container path", "config.mounts[2].container_path", nil},
			cfg(func(c *runtimeapi.ContainerConfig) { c.Mounts = append(c.Mounts, &runtimeapi.Mount{HostPath: "/data"}) })},
		{invalidCase{"propagation", "config.mounts[2].propagation", nil},
			cfg(func(c *runtimeapi.ContainerConfig) {
				c.Mounts = append(c.Mounts, &runtimeapi.Mount{ContainerPath: "/x", HostPath: "/x", Propagation: 8})
			})},
		{invalidCase{"writable image volume", `config.mounts[1]: image volume "busybox" at "/mnt/iv" must be read-only`, nil},
			cfg(func(c *runtimeapi.ContainerConfig) { c.Mounts[1].Readonly = false })},
		{invalidCase{"negative period", "config.linux.resources.cpu_period", nil},
			res(func(r *runtimeapi.LinuxContainerResources) { r.CpuPeriod = -1 })},
		{invalidCase{"negative shares", "config.linux.resources.cpu_shares", nil},
			res(func(r *runtimeapi.LinuxContainerResources) { r.CpuShares = -2 })},
		{invalidCase{"quota", "config.linux.resources.cpu_quota", nil}, res(func(r *runtimeapi.LinuxContainerResources) { r.CpuQuota = -2 })},
		{invalidCase{"memory", "config.linux.resources.memory_limit_in_bytes", nil},
			res(func(r *runtimeapi.LinuxContainerResources) { r.MemoryLimitInBytes = -5 })},
		{invalidCase{"oom score", "config.linux.resources.oom_score_adj", nil},
			res(func(r *runtimeapi.LinuxContainerResources) { r.OomScoreAdj = 1001 })},
		{invalidCase{"cpuset", "config.linux.resources.cpuset_mems", nil},
			res(func(r *runtimeapi.LinuxContainerResources) { r.CpusetMems = "0;reboot" })},
		{invalidCase{"uid", "config.linux.security_context.run_as_user", nil},
			sc(func(s *runtimeapi.LinuxContainerSecurityContext) { s.RunAsUser.Value = -1 })},
		{invalidCase{"target without id", "config.linux.security_context.namespace_options.target_id", nil},
			sc(func(s *runtimeapi.LinuxContainerSecurityContext) {
				s.NamespaceOptions.Pid = runtimeapi.NamespaceMode_TARGET
			})},
		{invalidCase{"seccomp type", "config.linux.security_context.seccomp.profile_type", nil},
			sc(func(s *runtimeapi.LinuxContainerSecurityContext) { s.Seccomp.ProfileType = 3 })},
		{invalidCase{"seccomp relative", "config.linux.security_context.seccomp.localhost_ref", nil},
			sc(func(s *runtimeapi.LinuxContainerSecurityContext) { s.Seccomp = localhost("block-chmod.json") })},
		{invalidCase{"seccomp missing file", `config.linux.security_context.seccomp.localhost_ref "/nonexistent/p.json"`, nil},
			sc(func(s *runtimeapi.LinuxContainerSecurityContext) { s.Seccomp = localhost("/nonexistent/p.json") })},
		{invalidCase{"seccomp device", `config.linux.security_context.seccomp.localhost_ref "/dev/zero"`, nil},
			sc(func(s *runtimeapi.LinuxContainerSecurityContext) { s.Seccomp = localhost("/dev/zero") })},
		{invalidCase{"legacy seccomp missing file", "config.linux.security_context.seccomp_profile_path", nil},
			sc(func(s *runtimeapi.LinuxContainerSecurityContext) {
				s.Seccomp, s.SeccompProfilePath = nil, "localhost//nonexistent/p.json"
			})},
		{invalidCase{"legacy seccomp unknown", "config.linux.security_context.seccomp_profile_path", nil},
			sc(func(s *runtimeapi.LinuxContainerSecurityContext) { s.SeccompProfilePath = "default" })},
	} {
		c, sb := containerRequest()
		tc.mutate(c, sb)
		wantRefusal(t, tc.invalidCase, validateContainerRequest(c, sb))
	}
}

func TestSeccompProfilePath(t *testing.T) {
	for path, want := range map[string]*runtimeapi.SecurityProfile{
		"":                {},
		"runtime/default": {ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
		"docker/default":  {ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
		"unconfined":      {ProfileType: runtimeapi.SecurityProfile_Unconfined},
		"localhost//p/x":  {ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "/p/x"},
	} {
		got, err := seccompProfile("f", nil, path)
		if path == "" && got != nil {
			t.Errorf("no profile = %v", got)
		}
		if err != nil || (path != "" && (got.GetProfileType() != want.GetProfileType() || got.GetLocalhostRef() != want.GetLocalhostRef())) {
			t.Errorf("seccompProfile(%q) = %v, %v; want %v", path, got, err, want)
		}
	}
	// The seccomp field wins over the deprecated path.
	field := &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
	if got, err := seccompProfile("f", field, "runtime/default"); err != nil || got != field {
		t.Errorf("both set = %v, %v", got, err)
	}
	for _, bad := range []string{"localhost/", "localhost/rel.json", "runtime/default ", "Unconfined"} {
		if _, err := seccompProfile("f", nil, bad); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "f.seccomp_profile_path") {
			t.Errorf("seccompProfile(%q) = %v, want InvalidArgument naming the field", bad, err)
		}
	}
}

// The deprecated path is applied, not only accepted.
func TestLegacySeccompPathApplied(t *testing.T) {
	ctx := namespaces.WithNamespace(context.Background(), "t")
	for path, confined := range map[string]bool{"runtime/default": true, "unconfined": false, "": false} {
		opts, err := withSecurityContext(&runtimeapi.LinuxContainerSecurityContext{SeccompProfilePath: path})
		if err != nil {
			t.Fatal(err)
		}
		spec, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: "c"}, opts...)
		if err != nil {
			t.Fatal(err)
		}
		if got := spec.Linux.Seccomp != nil; got != confined {
			t.Errorf("seccomp_profile_path %q: seccomp in spec = %v, want %v", path, got, confined)
		}
	}
}

// The RPCs refuse before anything is reserved or created, with InvalidArgument on the wire.
func TestValidationInRPCs(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	s := &service{cfg: Config{Namespace: "t", RootDir: t.TempDir(), StateDir: t.TempDir()}, store: newStore()}
	pod := podConfig("web", t.TempDir())
	_, err := s.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pod, RuntimeHandler: "gvisor"})
	if st, _ := status.FromError(toGRPC(err)); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), `runtime handlers: ""`) {
		t.Errorf("RunPodSandbox(gvisor) = %v, want InvalidArgument listing the handlers", err)
	}
	if err := s.store.reserveName(sandboxName(pod.Metadata), "other"); err != nil {
		t.Errorf("refused sandbox's name reserved: %v", err)
	}

	sb := &sandbox{meta: sandboxMeta{ID: "sb1", Name: "sb1-name", config: pod}, state: runtimeapi.PodSandboxState_SANDBOX_READY, pid: 1}
	s.store.addSandbox(sb)
	ctr, _ := containerRequest()
	ctr.Linux.SecurityContext.Privileged = true
	_, err = s.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: "sb1", Config: ctr, SandboxConfig: pod})
	if st, _ := status.FromError(toGRPC(err)); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "sandbox's config.linux.security_context.privileged") {
		t.Errorf("privileged CreateContainer = %v, want InvalidArgument naming both fields", err)
	}
	if err := s.store.reserveName(containerName(ctr.Metadata, pod.Metadata), "other"); err != nil {
		t.Errorf("refused container's name reserved: %v", err)
	}
}
