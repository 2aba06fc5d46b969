package cri

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2/ktesting"
)

// The fuzz targets decode arbitrary bytes as a request and run everything the request
// reaches before containerd is called: validation, then (for what validation lets
// through) names, port mappings, sandbox files and the OCI spec options, applied to a
// default spec. User and group lookups read a tiny rootfs of their own instead of a
// snapshot, so no option needs a containerd client. A panic is a bug in the product code.
//
//	go test -run XXX -fuzz FuzzSandboxRequest -fuzztime 60s ./cri/
//	go test -run XXX -fuzz FuzzContainerRequest -fuzztime 60s ./cri/

// fuzzImage is the pause image as oci.WithImageConfig reads it: a config descriptor
// carrying its blob inline, so that no content store is consulted.
type fuzzImage struct {
	containerd.Image
	config ocispec.Descriptor
}

func (i fuzzImage) Config(context.Context) (ocispec.Descriptor, error) { return i.config, nil }
func (i fuzzImage) ContentStore() content.Store                        { return nil }

func newFuzzImage(tb testing.TB, cfg ocispec.ImageConfig) fuzzImage {
	data, err := json.Marshal(ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}, Config: cfg})
	if err != nil {
		tb.Fatal(err)
	}
	return fuzzImage{config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(data),
		Size: int64(len(data)), Data: data}}
}

// fuzzRootfs is a rootfs with just the files user lookups read.
func fuzzRootfs(tb testing.TB) string {
	root := tb.TempDir()
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n",
		"etc/group":  "root:x:0:\nwheel:x:10:app\nnogroup:x:65534:\napp:x:1000:\n",
	}
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return root
}

// fuzzService is a service with nothing behind it but temporary directories.
func fuzzService(t *testing.T) *service {
	return &service{cfg: Config{Namespace: "fuzz", RootDir: t.TempDir(), StateDir: t.TempDir()}, store: newStore()}
}

// applySpec applies opts to a default spec rooted at root; errors are legitimate
// outcomes (an unknown user, say), panics are not.
func applySpec(root string, opts []oci.SpecOpts) (*oci.Spec, error) {
	ctx := namespaces.WithNamespace(context.Background(), "fuzz")
	withRoot := func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		s.Root.Path = root
		return nil
	}
	return oci.GenerateSpec(ctx, nil, &containers.Container{ID: "fuzz"}, append([]oci.SpecOpts{withRoot}, opts...)...)
}

// checkRefusal fails unless err is one validation may give.
func checkRefusal(t *testing.T, err error) {
	if !errdefs.IsInvalidArgument(err) && !errdefs.IsNotImplemented(err) {
		t.Fatalf("validation failed with %v, want InvalidArgument or Unimplemented", err)
	}
}

func addSeeds[M proto.Message](f *testing.F, msgs ...M) {
	for _, m := range msgs {
		data, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

func sandboxSeeds() []*runtimeapi.RunPodSandboxRequest {
	host := podConfig("host", "/var/log/pods/host")
	host.Linux = &runtimeapi.LinuxPodSandboxConfig{
		CgroupParent: "/kubepods/besteffort",
		Sysctls:      map[string]string{"kernel.shm_rmid_forced": "1"},
		SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_NODE,
				Ipc: runtimeapi.NamespaceMode_NODE},
			RunAsUser: &runtimeapi.Int64Value{Value: 1000}, RunAsGroup: &runtimeapi.Int64Value{Value: 1000},
			Privileged: true,
			Seccomp:    &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
		},
	}
	bare := &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "b", Namespace: "n", Uid: "u"}}
	return []*runtimeapi.RunPodSandboxRequest{
		{Config: podConfig("web", "/var/log/pods/web")},
		{Config: host, RuntimeHandler: "runc"},
		{Config: bare},
	}
}

func FuzzSandboxRequest(f *testing.F) {
	addSeeds(f, sandboxSeeds()...)
	root, pause := fuzzRootfs(f), newPauseImage(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		req := &runtimeapi.RunPodSandboxRequest{}
		if err := proto.Unmarshal(data, req); err != nil {
			t.Skip()
		}
		_, _ = runSandboxRequest(t, root, pause, req)
	})
}

func newPauseImage(tb testing.TB) fuzzImage {
	return newFuzzImage(tb, ocispec.ImageConfig{Entrypoint: []string{"/pause"}, User: "65535:65535"})
}

// runSandboxRequest runs what RunPodSandbox does with req apart from containerd and
// the network, and returns the pause container's spec or the error on the way there.
func runSandboxRequest(t *testing.T, root string, pause fuzzImage, req *runtimeapi.RunPodSandboxRequest) (*oci.Spec, error) {
	if err := validateSandboxRequest(req); err != nil {
		checkRefusal(t, err)
		return nil, err
	}
	cfg := req.GetConfig()
	_ = sandboxName(cfg.GetMetadata())
	if !labelsMatch(cfg.GetLabels(), cfg.GetLabels()) {
		t.Fatalf("labels do not match themselves: %v", cfg.GetLabels())
	}
	meta := sandboxMeta{ID: "fuzzsb", NetnsPath: "/run/netns/fuzz", CgroupsPath: "/kubepods/fuzzsb", config: cfg}
	for _, p := range podOf(&meta).Ports {
		if p.HostPort < 1 || p.HostPort > maxPort || p.ContainerPort < 1 || p.ContainerPort > maxPort {
			t.Fatalf("validated port mapping %+v is out of range", p)
		}
	}
	if _, err := resolvConf(cfg.GetDnsConfig()); err != nil {
		t.Fatalf("resolvConf: %v", err)
	}
	if err := writeSandboxFiles(t.TempDir(), cfg, []string{"10.88.0.2"}); err != nil {
		t.Fatalf("writeSandboxFiles: %v", err)
	}
	sb := &sandbox{meta: meta}
	_ = sandboxStatus(sb)
	spec, err := applySpec(root, fuzzService(t).pauseSpecOpts(sb, pause))
	if err == nil && spec.Process.OOMScoreAdj == nil {
		t.Fatal("pause spec without an OOM score")
	}
	return spec, err
}

func containerSeeds(tb testing.TB) []*runtimeapi.CreateContainerRequest {
	profile := filepath.Join(tb.TempDir(), "profile.json")
	if err := os.WriteFile(profile, []byte(`{"defaultAction":"SCMP_ACT_ALLOW"}`), 0o644); err != nil {
		tb.Fatal(err)
	}
	plain, pod := containerRequest()
	secure, _ := containerRequest()
	secure.Linux.SecurityContext = &runtimeapi.LinuxContainerSecurityContext{
		RunAsUsername:            "app",
		RunAsGroup:               &runtimeapi.Int64Value{Value: 10},
		SupplementalGroups:       []int64{1234},
		SupplementalGroupsPolicy: runtimeapi.SupplementalGroupsPolicy_Strict,
		ReadonlyRootfs:           true,
		NoNewPrivs:               true,
		MaskedPaths:              []string{"/proc/kcore"},
		ReadonlyPaths:            []string{"/proc/sys"},
		Capabilities:             &runtimeapi.Capability{AddCapabilities: []string{"NET_ADMIN"}, DropCapabilities: []string{"MKNOD"}},
		NamespaceOptions:         &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_TARGET, TargetId: "target"},
		Seccomp:                  &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: profile},
	}
	secure.Mounts[0].Propagation = runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
	secure.Tty, secure.WorkingDir, secure.StopSignal = true, "/srv", runtimeapi.Signal_SIGNAL_SIGQUIT
	privileged, _ := containerRequest()
	privileged.Linux.SecurityContext = &runtimeapi.LinuxContainerSecurityContext{Privileged: true, SeccompProfilePath: "runtime/default"}
	privPod := podConfig("priv", "/var/log/pods/priv")
	privPod.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{Privileged: true,
		NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Ipc: runtimeapi.NamespaceMode_NODE}}
	return []*runtimeapi.CreateContainerRequest{
		{PodSandboxId: "sb", Config: plain, SandboxConfig: pod},
		{PodSandboxId: "sb", Config: secure, SandboxConfig: pod},
		{PodSandboxId: "sb", Config: privileged, SandboxConfig: privPod},
	}
}

// fuzzImageInfo is the image the fuzzed containers run.
var fuzzImageInfo = imageInfo{id: "sha256:fuzz", config: ocispec.ImageConfig{Entrypoint: []string{"/bin/sh"}, Cmd: []string{"-c", "true"},
	Env: []string{"PATH=/bin", "FROM_IMAGE=yes"}, User: "app", WorkingDir: "/home/app", StopSignal: "SIGTERM"}}

func FuzzContainerRequest(f *testing.F) {
	addSeeds(f, containerSeeds(f)...)
	root := fuzzRootfs(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		req := &runtimeapi.CreateContainerRequest{}
		if err := proto.Unmarshal(data, req); err != nil {
			t.Skip()
		}
		// The request's sandbox config stands in for the stored one, which passed
		// RunPodSandbox's validation; a mangled one gives way to a plain pod.
		if validateSandboxRequest(&runtimeapi.RunPodSandboxRequest{Config: req.GetSandboxConfig()}) != nil {
			req.SandboxConfig = podConfig("fuzz", "/var/log/pods/fuzz")
		}
		_, _ = runContainerRequest(t, root, req)
	})
}

// runContainerRequest runs what CreateContainer does with req before containerd is
// called and returns the spec, or the error that ends the way there.
func runContainerRequest(t *testing.T, root string, req *runtimeapi.CreateContainerRequest) (*oci.Spec, error) {
	info := &fuzzImageInfo
	cfg, sbCfg := req.GetConfig(), req.GetSandboxConfig()
	if err := validateContainerRequest(cfg, sbCfg); err != nil {
		checkRefusal(t, err)
		return nil, err
	}
	_ = containerName(cfg.GetMetadata(), sbCfg.GetMetadata())
	_, _ = normalizeImageRef(cfg.GetImage().GetImage())
	if !labelsMatch(cfg.GetLabels(), cfg.GetLabels()) {
		t.Fatalf("labels do not match themselves: %v", cfg.GetLabels())
	}
	_, _ = containerArgs(cfg, info.config.Entrypoint, info.config.Cmd)
	_ = containerEnv(info.config.Env, cfg.GetEnvs(), sbCfg.GetHostname())
	_ = stopSignalName(&container{meta: containerMeta{config: cfg, StopSignal: info.config.StopSignal}})

	s := fuzzService(t)
	sb := &sandbox{meta: sandboxMeta{ID: "fuzzsb", NetnsPath: "/run/netns/fuzz", CgroupsPath: "/kubepods/fuzzsb", config: sbCfg},
		state: runtimeapi.PodSandboxState_SANDBOX_READY, pid: 1}
	meta := containerMeta{ID: "fuzzctr", SandboxID: sb.meta.ID, config: underDir(t, cfg)}
	_, ctx := ktesting.NewTestContext(t)
	opts, err := s.containerSpecOpts(ctx, sb, &meta, info, nil)
	if err != nil {
		return nil, err // e.g. no command at all, or rro on a runc without it
	}
	spec, err := applySpec(root, opts)
	if err != nil {
		return nil, err
	}
	if adj := spec.Process.OOMScoreAdj; adj != nil && (*adj < -1000 || *adj > 1000) {
		t.Fatalf("oom_score_adj %d in the spec", *adj)
	}
	if spec.Process.Cwd == "" || spec.Process.Cwd[0] != '/' {
		t.Fatalf("relative cwd %q in the spec", spec.Process.Cwd)
	}
	return spec, nil
}

// underDir moves a validated config's host paths under a test directory: criMounts
// creates the missing ones.
func underDir(t *testing.T, cfg *runtimeapi.ContainerConfig) *runtimeapi.ContainerConfig {
	out, _ := proto.Clone(cfg).(*runtimeapi.ContainerConfig)
	dir := t.TempDir()
	for _, m := range out.GetMounts() {
		if !isImageMount(m) {
			m.HostPath = filepath.Join(dir, filepath.Clean("/"+m.GetHostPath()))
		}
	}
	return out
}

// The seeds must get past validation, or the fuzzer starts far from the code it is for.
func TestFuzzSeedsAreValid(t *testing.T) {
	root := fuzzRootfs(t)
	for i, req := range sandboxSeeds() {
		if _, err := runSandboxRequest(t, root, newPauseImage(t), req); err != nil {
			t.Errorf("sandbox seed %d: %v", i, err)
		}
	}
	for i, req := range containerSeeds(t) {
		if _, err := runContainerRequest(t, root, req); err != nil {
			t.Errorf("container seed %d: %v", i, err)
		}
	}
}
