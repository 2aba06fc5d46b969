package cri

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2/ktesting"
)

// testEnv is a real containerd in temp dirs with a skiff CRI server in front of it.
type testEnv struct {
	t         *testing.T
	ctx       context.Context
	dir       string
	cgroup    string
	net       *fakeNetwork
	daemon    *Containerd
	cfg       Config
	socket    string
	stopServe context.CancelFunc
	served    chan struct{}
	srv       *Server
	rt        runtimeapi.RuntimeServiceClient
	img       runtimeapi.ImageServiceClient
}

func requireIntegration(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("integration test needs root (containerd, runc, network namespaces)")
	}
	for _, bin := range []string{"containerd", "containerd-shim-runc-v2", "runc", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("integration test needs %s in PATH: %v", bin, err)
		}
	}
}

func newTestEnv(t *testing.T) *testEnv {
	requireIntegration(t)
	_, ctx := ktesting.NewTestContext(t)
	// Short path: containerd's socket must fit in sun_path.
	dir, err := os.MkdirTemp("", "skcri-")
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, ctx: ctx, dir: dir, cgroup: "/" + filepath.Base(dir), net: newFakeNetwork(filepath.Base(dir) + "-")}
	t.Cleanup(e.cleanup)
	e.daemon, err = StartContainerd(ctx, ContainerdConfig{
		Address: filepath.Join(dir, "ctrd.sock"),
		Root:    filepath.Join(dir, "ctrd-root"),
		State:   filepath.Join(dir, "ctrd-state"),
	})
	if err != nil {
		t.Fatalf("StartContainerd: %v", err)
	}
	e.cfg = Config{
		ContainerdAddress: e.daemon.Address(),
		Namespace:         "skiff-test",
		RootDir:           filepath.Join(dir, "cri-root"),
		StateDir:          filepath.Join(dir, "cri-state"),
		RegistryConfigDir: filepath.Join(dir, "certs.d"),
		Network:           e.net,
		CgroupParent:      e.cgroup,
	}
	e.socket = filepath.Join(dir, "run", "cri.sock")
	e.startServer()
	return e
}

// startServer creates a Server on the env's containerd and serves it on e.socket.
func (e *testEnv) startServer() {
	t := e.t
	srv, err := New(e.ctx, e.cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	serveCtx, cancel := context.WithCancel(e.ctx)
	e.srv, e.stopServe, e.served = srv, cancel, make(chan struct{})
	go func() {
		defer close(e.served)
		if err := srv.Serve(serveCtx, e.socket); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	conn, err := grpc.NewClient("unix://"+e.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	e.rt, e.img = runtimeapi.NewRuntimeServiceClient(conn), runtimeapi.NewImageServiceClient(conn)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := e.rt.Version(e.ctx, &runtimeapi.VersionRequest{})
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("CRI socket never answered: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *testEnv) stopServer() {
	if e.srv == nil {
		return
	}
	e.stopServe()
	<-e.served
	if err := e.srv.Close(); err != nil {
		e.t.Errorf("Close: %v", err)
	}
	e.srv = nil
}

// cleanup removes every task, containerd, mount, netns, cgroup and file the test made,
// whether it passed or not.
func (e *testEnv) cleanup() {
	e.stopServer()
	if e.daemon != nil {
		e.killEverything()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if err := e.daemon.Stop(ctx); err != nil {
			e.t.Errorf("stop containerd: %v", err)
		}
		cancel()
	}
	e.killLeftShims()
	e.net.cleanup()
	unmountUnder(e.t, e.dir)
	// runc removes each container's cgroup; PID namespace holders (not containerd's) and
	// the parent are ours to remove.
	if err := killCgroupTree(e.cgroup); err != nil {
		e.t.Errorf("cgroup %s: %v", e.cgroup, err)
	}
	if err := os.RemoveAll(e.dir); err != nil {
		e.t.Errorf("remove %s: %v", e.dir, err)
	}
}

// killEverything deletes all tasks and containers in the test namespace so no shim
// outlives the test.
func (e *testEnv) killEverything() {
	c, err := containerd.New(e.daemon.Address())
	if err != nil {
		e.t.Errorf("connect for cleanup: %v", err)
		return
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), e.cfg.Namespace), 30*time.Second)
	defer cancel()
	list, _ := c.Containers(ctx)
	for _, cc := range list {
		if task, err := cc.Task(ctx, nil); err == nil {
			_ = task.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll)
			_, _ = task.Delete(ctx, containerd.WithProcessKill)
		}
		_ = cc.Delete(ctx, containerd.WithSnapshotCleanup)
	}
}

func unmountUnder(t *testing.T, dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			points = append(points, fields[4])
		}
	}
	for i := len(points) - 1; i >= 0; i-- {
		if err := syscall.Unmount(points[i], syscall.MNT_DETACH); err != nil {
			t.Logf("unmount %s: %v", points[i], err)
		}
	}
}

// busyboxLayer builds an uncompressed layer from the host's dynamic busybox and its libraries.
func busyboxLayer(t *testing.T) []byte {
	t.Helper()
	out, err := exec.Command("ldd", "/bin/busybox").Output()
	if err != nil {
		t.Skipf("host busybox unusable (apt package busybox): %v", err)
	}
	files := []string{"/bin/busybox"}
	for _, line := range strings.Split(string(out), "\n") {
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "/") {
				files = append(files, f)
			}
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	addDir := func(d string) {
		if !dirs[d] {
			dirs[d] = true
			_ = tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755})
		}
	}
	for _, d := range []string{"bin", "etc", "tmp", "proc", "sys", "dev"} {
		addDir(d)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel := strings.TrimPrefix(f, "/")
		var parents []string
		for d := filepath.Dir(rel); d != "."; d = filepath.Dir(d) {
			parents = append([]string{d}, parents...)
		}
		for _, d := range parents {
			addDir(d)
		}
		if err := tw.WriteHeader(&tar.Header{Name: rel, Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write(data)
	}
	applets, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, applet := range strings.Fields(string(applets)) {
		if applet != "busybox" && !strings.Contains(applet, "/") {
			// Hard links, as in Debian's package: masking one applet (critest masks
			// /bin/ls) must not mask the shell through a symlink. The mode is applied to the
			// shared inode, so it must be the binary's.
			_ = tw.WriteHeader(&tar.Header{Name: "bin/" + applet, Typeflag: tar.TypeLink, Linkname: "bin/busybox", Mode: 0o755})
		}
	}
	for name, content := range map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/false\nnobody:x:65534:65534:nobody:/:/bin/false\n",
		"etc/group":  "root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n",
	} {
		_ = tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(content))})
		_, _ = tw.Write([]byte(content))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// pushImage uploads a one-layer image to an OCI distribution registry by hand:
// blobs by monolithic upload, then the manifest under tag.
func pushImage(t *testing.T, registryURL, repo, tag string, layer []byte, cfg ocispec.ImageConfig) {
	t.Helper()
	layerDesc := descriptorOf(ocispec.MediaTypeImageLayer, layer)
	config, _ := json.Marshal(ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Config:   cfg,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{layerDesc.Digest}},
	})
	configDesc := descriptorOf(ocispec.MediaTypeImageConfig, config)
	manifest, _ := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: configDesc, Layers: []ocispec.Descriptor{layerDesc},
	})
	for _, blob := range [][]byte{layer, config} {
		resp, err := http.Post(registryURL+"/v2/"+repo+"/blobs/uploads/", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("start upload: %s %v", resp.Status, err)
		}
		q := loc.Query()
		q.Set("digest", digest.FromBytes(blob).String())
		loc.RawQuery = q.Encode()
		putURL := registryURL + loc.String()
		if loc.IsAbs() {
			putURL = loc.String()
		}
		httpPut(t, putURL, "application/octet-stream", blob)
	}
	httpPut(t, registryURL+"/v2/"+repo+"/manifests/"+tag, ocispec.MediaTypeImageManifest, manifest)
}

func httpPut(t *testing.T, u, contentType string, body []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, u, bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT %s: %s", u, resp.Status)
	}
}

// busyboxConfig is the image config of the busybox test image.
var busyboxConfig = ocispec.ImageConfig{Cmd: []string{"/bin/sh"}, Env: []string{"PATH=/bin", "FROM_IMAGE=yes"}, User: "0:0"}

// startRegistry serves busybox as library/busybox:latest and points docker.io at it
// through a hosts.toml mirror, as an offline node would be configured. It returns the
// registry's URL.
func (e *testEnv) startRegistry() string {
	t := e.t
	reg := httptest.NewServer(registry.New(registry.Logger(nullLogger())))
	t.Cleanup(reg.Close)
	pushImage(t, reg.URL, "library/busybox", "latest", busyboxLayer(t), busyboxConfig)
	e.mirror("docker.io", reg.URL)
	return reg.URL
}

func wantCode(t *testing.T, err error, code codes.Code, what string) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("%s: got %v, want code %v", what, err, code)
	}
}

func podConfig(name, logDir string) *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "default", Uid: "uid-" + name},
		Hostname:     name,
		LogDirectory: logDir,
		DnsConfig:    &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"default.svc.cluster.local"}, Options: []string{"ndots:5"}},
		PortMappings: []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: 18080}},
		Labels:       map[string]string{"app": name},
		Annotations:  map[string]string{"note": "from-test"},
		Linux:        &runtimeapi.LinuxPodSandboxConfig{},
	}
}

func (e *testEnv) createContainer(sandboxID string, pod *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) string {
	e.t.Helper()
	resp, err := e.rt.CreateContainer(e.ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sandboxID, Config: cfg, SandboxConfig: pod})
	if err != nil {
		e.t.Fatalf("CreateContainer %s: %v", cfg.GetMetadata().GetName(), err)
	}
	if _, err := e.rt.StartContainer(e.ctx, &runtimeapi.StartContainerRequest{ContainerId: resp.ContainerId}); err != nil {
		e.t.Fatalf("StartContainer %s: %v", cfg.GetMetadata().GetName(), err)
	}
	return resp.ContainerId
}

func (e *testEnv) containerStatus(id string) *runtimeapi.ContainerStatus {
	e.t.Helper()
	resp, err := e.rt.ContainerStatus(e.ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		e.t.Fatalf("ContainerStatus %s: %v", id, err)
	}
	return resp.Status
}

func (e *testEnv) waitState(id string, want runtimeapi.ContainerState) *runtimeapi.ContainerStatus {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := e.containerStatus(id)
		if st.State == want {
			return st
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("container %s stayed %v, want %v", id, st.State, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitFileContains(t *testing.T, path string, wants ...string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, _ := os.ReadFile(path)
		ok := true
		for _, w := range wants {
			ok = ok && strings.Contains(string(data), w)
		}
		if ok {
			return string(data)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never contained %q; has:\n%s", path, wants, data)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func nullLogger() *log.Logger { return log.New(io.Discard, "", 0) }

// killCgroupTree kills every process in the cgroup at path and below, in every
// hierarchy, and removes those cgroups.
func killCgroupTree(path string) error {
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	var dirs []string
	for _, mount := range mounts {
		_ = filepath.WalkDir(filepath.Join(mount, path), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for i := len(dirs) - 1; i >= 0; i-- { // deepest first
		for {
			procs, _ := os.ReadFile(filepath.Join(dirs[i], "cgroup.procs"))
			for _, pid := range strings.Fields(string(procs)) {
				if n, err := strconv.Atoi(pid); err == nil {
					_ = syscall.Kill(n, syscall.SIGKILL)
				}
			}
			err := os.Remove(dirs[i])
			if err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			if time.Now().After(deadline) {
				return err
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// killLeftShims fails the test if shims of its containerd outlive it (a shim whose last
// task's deletion was cut short is never told to exit), and kills them. They are found by
// the address of the test's containerd, and given a few seconds to exit first.
func (e *testEnv) killLeftShims() {
	var pids []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out, _ := exec.Command("pgrep", "-f", "-- -address "+filepath.Join(e.dir, "ctrd.sock")+"$").Output()
		if pids = strings.Fields(string(out)); len(pids) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(pids) == 0 {
		return
	}
	e.t.Errorf("shims outlived the test's containerd: %v", pids)
	for _, pid := range pids {
		if n, err := strconv.Atoi(pid); err == nil {
			_ = syscall.Kill(n, syscall.SIGKILL)
		}
	}
}
