package cri

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2/ktesting"

	"github.com/skiff-sh/skiff/network"
)

// recordingNetwork is a Network that touches nothing and records calls.
type recordingNetwork struct {
	attachErr error
	calls     []string
	cidr      string
}

func (r *recordingNetwork) SetPodCIDR(cidr string) error { r.cidr = cidr; return nil }
func (r *recordingNetwork) Ready() error                 { return nil }
func (r *recordingNetwork) CreateNetns(id string) (string, error) {
	r.calls = append(r.calls, "create "+id)
	return "/run/netns/test-" + id, nil
}
func (r *recordingNetwork) Attach(_ context.Context, p network.Pod) (*network.Result, error) {
	r.calls = append(r.calls, "attach "+p.NetnsPath)
	return &network.Result{}, r.attachErr
}
func (r *recordingNetwork) Detach(_ context.Context, p network.Pod) error {
	r.calls = append(r.calls, "detach "+p.ID)
	return nil
}
func (r *recordingNetwork) Sandboxes() (map[string]string, error) { return nil, nil }
func (r *recordingNetwork) RemoveNetns(path string) error {
	r.calls = append(r.calls, "remove "+path)
	return nil
}

func TestConfigValidate(t *testing.T) {
	cfg := Config{ContainerdAddress: "/run/c.sock", RootDir: "/var/lib/skiff/cri", StateDir: "/run/skiff/cri"}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Namespace != "skiff" || cfg.PauseImage != "registry.k8s.io/pause:3.10" || cfg.Snapshotter != "overlayfs" || cfg.CgroupParent != "/skiff" || cfg.StreamAddress != "127.0.0.1:0" {
		t.Errorf("defaults not applied: %+v", cfg)
	}
	bad := Config{RootDir: "relative", RegistryConfigDir: "also-relative", StreamAddress: "no-port"}
	err := bad.validate()
	for _, want := range []string{"ContainerdAddress is required", "StateDir is required", `RootDir "relative"`, `RegistryConfigDir "also-relative"`, `StreamAddress "no-port"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validate() = %v, want it to mention %q", err, want)
		}
	}
}

func TestContainerdConfig(t *testing.T) {
	cfg := ContainerdConfig{Address: "/run/skiff/containerd.sock", Root: "/var/lib/skiff/containerd", State: "/run/skiff/containerd"}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.ConfigPath != "/var/lib/skiff/containerd/config.toml" || cfg.Binary != "containerd" {
		t.Errorf("defaults: %+v", cfg)
	}
	toml := containerdTOML(cfg)
	for _, want := range []string{
		"version = 2\n",
		`root = "/var/lib/skiff/containerd"`,
		`state = "/run/skiff/containerd"`,
		`disabled_plugins = ["io.containerd.grpc.v1.cri"]`,
		`address = "/run/skiff/containerd.sock"`,
		`path = "/var/lib/skiff/containerd/opt"`,
	} {
		if !strings.Contains(toml, want) {
			t.Errorf("config lacks %q:\n%s", want, toml)
		}
	}
	long := ContainerdConfig{Address: "/" + strings.Repeat("x", 120), Root: "/r", State: "/s"}
	if err := long.validate(); err == nil {
		t.Error("a socket path beyond sun_path was accepted")
	}
}

func TestStoreNamesAndIDs(t *testing.T) {
	s := newStore()
	if err := s.reserveName("web_default_uid_0", "aaa111"); err != nil {
		t.Fatal(err)
	}
	err := s.reserveName("web_default_uid_0", "bbb222")
	if !errdefs.IsAlreadyExists(err) || !strings.Contains(err.Error(), "aaa111") {
		t.Fatalf("second reservation = %v, want AlreadyExists naming aaa111", err)
	}
	s.releaseName("web_default_uid_0", "bbb222") // not the owner: no effect
	if err := s.reserveName("web_default_uid_0", "ccc333"); err == nil {
		t.Fatal("release by a non-owner freed the name")
	}
	s.addSandbox(&sandbox{meta: sandboxMeta{ID: "abc123", Name: "a"}})
	s.addSandbox(&sandbox{meta: sandboxMeta{ID: "abd456", Name: "b"}})
	for id, want := range map[string]string{"abc123": "abc123", "abd": "abd456", "abc": "abc123"} {
		sb, err := s.sandbox(id)
		if err != nil || sb.meta.ID != want {
			t.Errorf("sandbox(%q) = %v, %v; want %s", id, sb, err, want)
		}
	}
	if _, err := s.sandbox("ab"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("ambiguous prefix: %v", err)
	}
	if _, err := s.sandbox("zzz"); !errdefs.IsNotFound(err) {
		t.Errorf("unknown ID: %v", err)
	}
	s.deleteSandbox("abc123")
	if err := s.reserveName("a", "new"); err != nil {
		t.Errorf("name of a deleted sandbox still reserved: %v", err)
	}
}

func TestContainerArgs(t *testing.T) {
	entry, cmd := []string{"/entry"}, []string{"default"}
	for _, tc := range []struct {
		command, args, want []string
	}{
		{nil, nil, []string{"/entry", "default"}},
		{nil, []string{"x"}, []string{"/entry", "x"}},
		{[]string{"/bin/sh"}, nil, []string{"/bin/sh"}},
		{[]string{"/bin/sh"}, []string{"-c", "true"}, []string{"/bin/sh", "-c", "true"}},
	} {
		got, err := containerArgs(&runtimeapi.ContainerConfig{Command: tc.command, Args: tc.args}, entry, cmd)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("containerArgs(%q, %q) = %q, %v; want %q", tc.command, tc.args, got, err, tc.want)
		}
	}
	if _, err := containerArgs(&runtimeapi.ContainerConfig{}, nil, nil); !errdefs.IsInvalidArgument(err) {
		t.Errorf("no command at all: %v", err)
	}
}

func TestContainerEnv(t *testing.T) {
	got := containerEnv([]string{"PATH=/bin", "A=image", "B=image"},
		[]*runtimeapi.KeyValue{{Key: "B", Value: []byte("cri")}, {Key: "C", Value: []byte("x=y")}}, "pod")
	want := []string{"PATH=/bin", "HOSTNAME=pod", "A=image", "B=cri", "C=x=y"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("containerEnv = %q, want %q", got, want)
	}
}

func TestSandboxFiles(t *testing.T) {
	dir := t.TempDir()
	cfg := &runtimeapi.PodSandboxConfig{
		Hostname:  "web-1",
		DnsConfig: &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10", "1.1.1.1"}, Searches: []string{"ns.svc", "svc"}, Options: []string{"ndots:5"}},
	}
	if err := writeSandboxFiles(dir, cfg, []string{"10.1.0.5"}); err != nil {
		t.Fatal(err)
	}
	read := func(name string) string {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	if got := read("hostname"); got != "web-1\n" {
		t.Errorf("hostname = %q", got)
	}
	if got, want := read("resolv.conf"), "search ns.svc svc\nnameserver 10.96.0.10\nnameserver 1.1.1.1\noptions ndots:5\n"; got != want {
		t.Errorf("resolv.conf = %q, want %q", got, want)
	}
	if got := read("hosts"); !strings.Contains(got, "127.0.0.1\tlocalhost") || !strings.Contains(got, "10.1.0.5\tweb-1\n") {
		t.Errorf("hosts = %q", got)
	}
	host, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		t.Skip("host has no /etc/resolv.conf")
	}
	if got, _ := resolvConf(nil); !bytes.Equal(got, host) {
		t.Errorf("resolvConf(nil) = %q, want the host's %q", got, host)
	}
}

func TestPodOfPortMappings(t *testing.T) {
	meta := &sandboxMeta{ID: "id1", NetnsPath: "/run/netns/x", config: &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "u1"},
		PortMappings: []*runtimeapi.PortMapping{
			{Protocol: runtimeapi.Protocol_UDP, ContainerPort: 53, HostPort: 5353, HostIp: "127.0.0.1"},
			{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80}, // no host port: not mapped
		},
	}}
	pod := podOf(meta)
	want := network.Pod{ID: "id1", Namespace: "default", Name: "web", UID: "u1", NetnsPath: "/run/netns/x",
		Ports: []network.PortMapping{{HostPort: 5353, ContainerPort: 53, Protocol: "udp", HostIP: "127.0.0.1"}}}
	if !reflect.DeepEqual(pod, want) {
		t.Errorf("podOf = %+v, want %+v", pod, want)
	}
}

func TestLabelsMatch(t *testing.T) {
	labels := map[string]string{"app": "web", "tier": "front"}
	for sel, want := range map[string]bool{"": true, "app=web": true, "app=web,tier=front": true, "app=db": false, "missing=x": false} {
		selector := map[string]string{}
		for _, kv := range strings.Split(sel, ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				selector[k] = v
			}
		}
		if got := labelsMatch(labels, selector); got != want {
			t.Errorf("labelsMatch(%q) = %v", sel, got)
		}
	}
}

func TestImageNames(t *testing.T) {
	for in, want := range map[string]string{
		"nginx":                        "docker.io/library/nginx:latest",
		"nginx:1.27":                   "docker.io/library/nginx:1.27",
		"registry.k8s.io/pause:3.10":   "registry.k8s.io/pause:3.10",
		"localhost:5000/team/app":      "localhost:5000/team/app:latest",
		"busybox@sha256:" + hex64('a'): "docker.io/library/busybox@sha256:" + hex64('a'),
	} {
		got, err := normalizeImageRef(in)
		if err != nil || got.String() != want {
			t.Errorf("normalizeImageRef(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	if _, err := normalizeImageRef("library/UPPER"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("bad reference: %v", err)
	}
	for in, want := range map[string]bool{"sha256:" + hex64('b'): true, hex64('c'): true, "sha256:abc": false, "nginx": false} {
		if _, got := asImageID(in); got != want {
			t.Errorf("asImageID(%q) = %v", in, got)
		}
	}
	ci := &criImage{names: []string{"docker.io/library/nginx:latest", "docker.io/library/nginx@sha256:" + hex64('d'), "sha256:" + hex64('e')}}
	tags, digests := ci.splitRefs()
	if !reflect.DeepEqual(tags, []string{"docker.io/library/nginx:latest"}) || !reflect.DeepEqual(digests, []string{"docker.io/library/nginx@sha256:" + hex64('d')}) {
		t.Errorf("refs = %q, %q", tags, digests)
	}
	for user, want := range map[string]string{"": "<nil>/", "65535:65535": "65535/", "nginx": "<nil>/nginx", "101:nogroup": "101/"} {
		uid, name := imageUser(user)
		got := "<nil>"
		if uid != nil {
			got = fmt.Sprint(*uid)
		}
		if got+"/"+name != want {
			t.Errorf("imageUser(%q) = %s/%s, want %s", user, got, name, want)
		}
	}
}

func hex64(c byte) string { return strings.Repeat(string(c), 64) }

func TestCredentials(t *testing.T) {
	basic := base64.StdEncoding.EncodeToString([]byte("bob:s3cret"))
	for _, tc := range []struct {
		auth       *runtimeapi.AuthConfig
		host       string
		user, pass string
	}{
		{nil, "r.example", "", ""},
		{&runtimeapi.AuthConfig{Username: "u", Password: "p"}, "any.host", "u", "p"},
		{&runtimeapi.AuthConfig{Auth: basic, ServerAddress: "https://r.example"}, "r.example", "bob", "s3cret"},
		{&runtimeapi.AuthConfig{Auth: basic, ServerAddress: "r.example"}, "other.example", "", ""},
		{&runtimeapi.AuthConfig{IdentityToken: "tok", ServerAddress: "docker.io"}, "registry-1.docker.io", "", "tok"},
	} {
		user, pass, err := credentialsFor(tc.auth)(tc.host)
		if err != nil || user != tc.user || pass != tc.pass {
			t.Errorf("credentials(%v, %s) = %q %q %v; want %q %q", tc.auth, tc.host, user, pass, err, tc.user, tc.pass)
		}
	}
}

func TestOOMPolicy(t *testing.T) {
	p := oomPolicy{own: -500, canLower: false}
	if got := p.clamp(-998); got != -500 {
		t.Errorf("clamp(-998) without CAP_SYS_RESOURCE = %d", got)
	}
	if got := p.clamp(1000); got != 1000 {
		t.Errorf("clamp(1000) = %d", got)
	}
	p.canLower = true
	if got := p.clamp(-998); got != -998 {
		t.Errorf("clamp(-998) with CAP_SYS_RESOURCE = %d", got)
	}
}

func TestToGRPC(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code codes.Code
	}{
		{fmt.Errorf("sandbox x: %w", errdefs.ErrNotFound), codes.NotFound},
		{fmt.Errorf("name taken: %w", errdefs.ErrAlreadyExists), codes.AlreadyExists},
		{fmt.Errorf("not ready: %w", errdefs.ErrFailedPrecondition), codes.FailedPrecondition},
		{fmt.Errorf("exec: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{status.Error(codes.Unavailable, "down"), codes.Unavailable},
		{errors.New("boom"), codes.Unknown},
	} {
		got := toGRPC(tc.err)
		if status.Code(got) != tc.code || !strings.Contains(got.Error(), strings.TrimPrefix(tc.err.Error(), "rpc error: ")) &&
			status.Code(got) != codes.Unavailable {
			t.Errorf("toGRPC(%v) = %v, want code %v", tc.err, got, tc.code)
		}
	}
}

func TestContainerLogFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c", "0.log")
	l, err := openContainerLog(path, false, false)
	if err != nil {
		t.Fatal(err)
	}
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	l.copiers.Add(2)
	go l.copy("stdout", outR)
	go l.copy("stderr", errR)
	long := strings.Repeat("x", maxLogLine+10)
	fmt.Fprint(outW, "one\r\n\n"+long+"\nlast-no-newline")
	fmt.Fprint(errW, "err line\n")
	outW.Close()
	errW.Close()
	l.close()

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, rec := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		fields := strings.SplitN(rec, " ", 4)
		if len(fields) != 4 {
			t.Fatalf("malformed record %q", rec)
		}
		got = append(got, fields[1]+" "+fields[2]+" "+fmt.Sprint(len(fields[3]))+" "+fields[3][:min(len(fields[3]), 15)])
	}
	want := map[string]bool{
		"stdout F 3 one": true, "stdout F 0 ": true,
		"stdout P 16384 xxxxxxxxxxxxxxx": true, "stdout F 10 xxxxxxxxxx": true,
		"stdout F 15 last-no-newline": true, "stderr F 8 err line": true,
	}
	if len(got) != len(want) {
		t.Fatalf("records = %q", got)
	}
	for _, g := range got {
		if !want[g] {
			t.Errorf("unexpected record %q (all: %q)", g, got)
		}
	}
}

func TestContainerLogDetachKeepsLinePartial(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	l, err := openContainerLog(path, true, false)
	if err != nil {
		t.Fatal(err)
	}
	r, w := io.Pipe()
	l.copiers.Add(1)
	go l.copy("stdout", r)
	fmt.Fprint(w, "half")
	l.detached.Store(true)
	w.CloseWithError(errors.New("detached"))
	l.detach()
	data, _ := os.ReadFile(path)
	if !strings.HasSuffix(string(data), " stdout P half\n") {
		t.Errorf("log = %q, want a partial record", data)
	}
}

func TestPauseImage(t *testing.T) {
	p, err := buildPauseImage()
	if err != nil {
		t.Fatalf("%v (the Makefile runs cri/pause/build.sh first)", err)
	}
	again, _ := buildPauseImage()
	if p.manifestDesc.Digest != again.manifestDesc.Digest {
		t.Error("pause image is not reproducible")
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(p.config, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Config.User != "65535:65535" || !reflect.DeepEqual(cfg.Config.Entrypoint, []string{"/pause"}) ||
		len(cfg.RootFS.DiffIDs) != 1 || cfg.RootFS.DiffIDs[0] != p.layerDesc.Digest {
		t.Errorf("pause config = %+v", cfg)
	}
	tr := tar.NewReader(bytes.NewReader(p.layer))
	hdr, err := tr.Next()
	if err != nil || hdr.Name != "pause" || hdr.Mode&0o111 == 0 {
		t.Fatalf("layer entry = %+v, %v", hdr, err)
	}
	bin, _ := io.ReadAll(tr)
	if !bytes.HasPrefix(bin, []byte("\x7fELF")) || len(bin) > 64<<10 {
		t.Errorf("pause binary: %d bytes, ELF=%v", len(bin), bytes.HasPrefix(bin, []byte("\x7fELF")))
	}
}

func TestUpdateRuntimeConfig(t *testing.T) {
	net := &recordingNetwork{}
	s := &service{cfg: Config{Network: net}}
	_, ctx := ktesting.NewTestContext(t)
	if _, err := s.UpdateRuntimeConfig(ctx, &runtimeapi.UpdateRuntimeConfigRequest{RuntimeConfig: &runtimeapi.RuntimeConfig{
		NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: "10.244.1.0/24"}}}); err != nil || net.cidr != "10.244.1.0/24" {
		t.Errorf("UpdateRuntimeConfig: %v, cidr %q", err, net.cidr)
	}
	if _, err := s.UpdateRuntimeConfig(ctx, &runtimeapi.UpdateRuntimeConfigRequest{}); err != nil {
		t.Errorf("empty UpdateRuntimeConfig: %v", err)
	}
}

// A sandbox that cannot be set up says why, with the gRPC code callers act on.
func TestRunPodSandboxPreconditions(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	s := &service{cfg: Config{Namespace: "t", RootDir: t.TempDir(), StateDir: t.TempDir()}, store: newStore()}
	// Host IPC: no shm tmpfs to mount, so this runs unprivileged.
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "u1"},
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Ipc: runtimeapi.NamespaceMode_NODE}}},
	}
	_, err := s.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if !errdefs.IsFailedPrecondition(err) {
		t.Errorf("pod network without a Network = %v, want FailedPrecondition", err)
	}
	if err := s.store.reserveName(sandboxName(cfg.Metadata), "other"); err != nil {
		t.Errorf("name still reserved: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(s.cfg.RootDir, "sandboxes")); len(entries) != 0 {
		t.Errorf("sandbox directory left behind: %v", entries)
	}
	_, err = s.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: &runtimeapi.PodSandboxConfig{}})
	if !errdefs.IsInvalidArgument(err) {
		t.Errorf("no metadata = %v, want InvalidArgument", err)
	}
}

func TestImageMountValidation(t *testing.T) {
	img := &runtimeapi.ImageSpec{Image: "registry.k8s.io/busybox:1.36"}
	for _, tc := range []struct {
		name  string
		mount *runtimeapi.Mount
		ok    bool
	}{
		{"read-only", &runtimeapi.Mount{ContainerPath: "/mnt/v", Readonly: true, Image: img}, true},
		{"sub path", &runtimeapi.Mount{ContainerPath: "/mnt/v", Readonly: true, Image: img, ImageSubPath: "etc/ssl"}, true},
		{"writable", &runtimeapi.Mount{ContainerPath: "/mnt/v", Image: img}, false},
		{"relative container path", &runtimeapi.Mount{ContainerPath: "mnt/v", Readonly: true, Image: img}, false},
		{"absolute sub path", &runtimeapi.Mount{ContainerPath: "/mnt/v", Readonly: true, Image: img, ImageSubPath: "/etc"}, false},
		{"escaping sub path", &runtimeapi.Mount{ContainerPath: "/mnt/v", Readonly: true, Image: img, ImageSubPath: "../etc"}, false},
		{"unclean sub path", &runtimeapi.Mount{ContainerPath: "/mnt/v", Readonly: true, Image: img, ImageSubPath: "etc/../.."}, false},
	} {
		err := validateImageMount(tc.mount)
		if tc.ok && err != nil {
			t.Errorf("%s: validateImageMount = %v, want nil", tc.name, err)
		}
		if !tc.ok && !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: validateImageMount = %v, want InvalidArgument", tc.name, err)
		}
	}
}

func TestCRIMountsLeavesImageMounts(t *testing.T) {
	host := t.TempDir()
	mounts := []*runtimeapi.Mount{
		{ContainerPath: "/mnt/image", Readonly: true, Image: &runtimeapi.ImageSpec{Image: "busybox"}},
		{ContainerPath: "/mnt/host", HostPath: host},
	}
	got, err := criMounts(mounts, false, runtimeFeatures{})
	if err != nil {
		t.Fatalf("criMounts: %v", err)
	}
	if len(got) != 1 || got[0].Destination != "/mnt/host" {
		t.Errorf("criMounts = %+v, want only the host path mount", got)
	}
}

func TestImageSubPath(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/", filepath.Join(root, "out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("etc", filepath.Join(root, "in")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		sub, want string
		ok        bool
	}{
		{"", root, true},
		{"etc", filepath.Join(root, "etc"), true},
		{"in", filepath.Join(root, "etc"), true},
		{"missing", "", false},
		{"out", "", false},
	} {
		got, err := imageSubPath(root, tc.sub)
		if tc.ok && (err != nil || got != tc.want) {
			t.Errorf("imageSubPath(%q) = %q, %v; want %q", tc.sub, got, err, tc.want)
		}
		if !tc.ok && !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("imageSubPath(%q) = %q, %v; want InvalidArgument", tc.sub, got, err)
		}
	}
}

func TestBindOptionsRecursiveReadOnly(t *testing.T) {
	rro := runtimeFeatures{recursiveReadOnly: true}
	for _, tc := range []struct {
		name     string
		mount    *runtimeapi.Mount
		features runtimeFeatures
		want     []string
		err      error
	}{
		{"rw", &runtimeapi.Mount{}, rro, []string{"rbind", "rprivate", "rw"}, nil},
		{"ro", &runtimeapi.Mount{Readonly: true}, rro, []string{"rbind", "rprivate", "ro"}, nil},
		{"rro", &runtimeapi.Mount{Readonly: true, RecursiveReadOnly: true}, rro, []string{"rbind", "rprivate", "ro", "rro"}, nil},
		{"rro without ro", &runtimeapi.Mount{RecursiveReadOnly: true}, rro, nil, errdefs.ErrInvalidArgument},
		{"rro shared", &runtimeapi.Mount{Readonly: true, RecursiveReadOnly: true,
			Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL}, rro, nil, errdefs.ErrInvalidArgument},
		{"rro slave", &runtimeapi.Mount{Readonly: true, RecursiveReadOnly: true,
			Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}, rro, nil, errdefs.ErrInvalidArgument},
		{"rro unsupported", &runtimeapi.Mount{Readonly: true, RecursiveReadOnly: true}, runtimeFeatures{}, nil, errdefs.ErrNotImplemented},
	} {
		got, err := bindOptions(tc.mount, tc.features)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%s: bindOptions error = %v, want %v", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: bindOptions = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
}

func TestParseRuncFeatures(t *testing.T) {
	f, err := parseRuncFeatures([]byte(`{"ociVersionMin":"1.0.0","mountOptions":["bind","ro","rro","rbind"]}`))
	if err != nil || !f.recursiveReadOnly {
		t.Errorf("parseRuncFeatures(with rro) = %+v, %v", f, err)
	}
	f, err = parseRuncFeatures([]byte(`{"mountOptions":["bind","ro"]}`))
	if err != nil || f.recursiveReadOnly {
		t.Errorf("parseRuncFeatures(without rro) = %+v, %v", f, err)
	}
	if _, err := parseRuncFeatures([]byte(`not json`)); err == nil {
		t.Error("parseRuncFeatures(garbage) succeeded")
	}
	h := f.runtimeHandlers()
	if len(h) != 1 || h[0].GetName() != "" || h[0].GetFeatures().GetRecursiveReadOnlyMounts() {
		t.Errorf("runtimeHandlers = %v", h)
	}
}

func TestWithUserSupplementalGroupsPolicy(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\ndefault-user:x:1000:1000::/home:/bin/sh\n",
		"etc/group":  "root:x:0:\ndefault-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		policy runtimeapi.SupplementalGroupsPolicy
		want   []int64
	}{
		{runtimeapi.SupplementalGroupsPolicy_Merge, []int64{1000, 1234, 50000}},
		{runtimeapi.SupplementalGroupsPolicy_Strict, []int64{1000, 1234}},
	} {
		sc := &runtimeapi.LinuxContainerSecurityContext{
			RunAsUser:                &runtimeapi.Int64Value{Value: 1000},
			SupplementalGroups:       []int64{1234},
			SupplementalGroupsPolicy: tc.policy,
		}
		spec := &oci.Spec{Root: &specs.Root{Path: root}, Process: &specs.Process{}, Linux: &specs.Linux{}}
		for _, opt := range withUser(sc, "") {
			if err := opt(context.Background(), nil, &containers.Container{}, spec); err != nil {
				t.Fatalf("%v: %v", tc.policy, err)
			}
		}
		got := specUser(spec).GetLinux()
		groups := append([]int64{}, got.GetSupplementalGroups()...)
		slices.Sort(groups)
		if got.GetUid() != 1000 || got.GetGid() != 1000 || !reflect.DeepEqual(groups, tc.want) {
			t.Errorf("%v: user = %v, want uid/gid 1000 and groups %v", tc.policy, got, tc.want)
		}
	}
}
