package cri

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-sh/skiff/network"
)

func TestIntegrationPodLifecycle(t *testing.T) {
	e := newTestEnv(t)
	ctx := e.ctx
	e.startRegistry()

	// Runtime identity and readiness.
	v, err := e.rt.Version(ctx, &runtimeapi.VersionRequest{})
	if err != nil || v.RuntimeName != "skiff" || v.RuntimeApiVersion != "v1" {
		t.Fatalf("Version = %v, %v", v, err)
	}
	if rc, err := e.rt.RuntimeConfig(ctx, &runtimeapi.RuntimeConfigRequest{}); err != nil || rc.Linux.CgroupDriver != runtimeapi.CgroupDriver_CGROUPFS {
		t.Errorf("RuntimeConfig = %v, %v", rc, err)
	}
	e.net.mu.Lock()
	e.net.readyErr = fmt.Errorf("no conflist yet")
	e.net.mu.Unlock()
	st, err := e.rt.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	conds := map[string]*runtimeapi.RuntimeCondition{}
	for _, c := range st.Status.Conditions {
		conds[c.Type] = c
	}
	if !conds[runtimeapi.RuntimeReady].Status || conds[runtimeapi.NetworkReady].Status ||
		!strings.Contains(conds[runtimeapi.NetworkReady].Message, "no conflist yet") {
		t.Fatalf("Status conditions = %v", st.Status.Conditions)
	}
	e.net.mu.Lock()
	e.net.readyErr = nil
	e.net.mu.Unlock()
	if _, err := e.rt.UpdateRuntimeConfig(ctx, &runtimeapi.UpdateRuntimeConfigRequest{RuntimeConfig: &runtimeapi.RuntimeConfig{
		NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: "10.99.0.0/24"}}}); err != nil || e.net.cidr != "10.99.0.0/24" {
		t.Fatalf("UpdateRuntimeConfig: %v, cidr %q", err, e.net.cidr)
	}

	// The pause image is imported, pinned and runs as 65535.
	ps, err := e.img.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: DefaultPauseImage}})
	if err != nil || ps.Image == nil || !ps.Image.Pinned || ps.Image.Uid.GetValue() != 65535 {
		t.Fatalf("pause ImageStatus = %v, %v", ps, err)
	}
	_, err = e.img.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: DefaultPauseImage}})
	wantCode(t, err, codes.FailedPrecondition, "RemoveImage(pause)")

	// Pull through the hosts.toml mirror with a short name.
	pull, err := e.img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "busybox"}})
	if err != nil {
		t.Fatalf("PullImage: %v", err)
	}
	bs, err := e.img.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: "busybox"}})
	if err != nil || bs.Image == nil || bs.Image.Id != pull.ImageRef ||
		len(bs.Image.RepoTags) != 1 || bs.Image.RepoTags[0] != "docker.io/library/busybox:latest" ||
		len(bs.Image.RepoDigests) != 1 || bs.Image.Size == 0 {
		t.Fatalf("busybox ImageStatus = %v, %v (pulled %s)", bs, err, pull.ImageRef)
	}
	byID, err := e.img.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: pull.ImageRef}})
	if err != nil || byID.Image.GetId() != pull.ImageRef {
		t.Fatalf("ImageStatus by ID = %v, %v", byID, err)
	}
	list, err := e.img.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil || len(list.Images) != 2 {
		t.Fatalf("ListImages = %v, %v", list, err)
	}
	missing, err := e.img.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: "nothere:1"}})
	if err != nil || missing.Image != nil {
		t.Fatalf("ImageStatus(missing) = %v, %v", missing, err)
	}

	// A pod with its own network namespace.
	logDir := filepath.Join(e.dir, "logs", "pod1")
	pod := podConfig("pod1", logDir)
	run, err := e.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pod})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	sbID := run.PodSandboxId
	_, err = e.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pod})
	wantCode(t, err, codes.AlreadyExists, "RunPodSandbox(same name)")
	if !strings.Contains(err.Error(), sbID) {
		t.Errorf("AlreadyExists error %q does not name %s", err, sbID)
	}
	sbs, err := e.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sbID})
	if err != nil || sbs.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY || sbs.Status.Network.Ip != "10.99.0.2" ||
		sbs.Status.Labels["app"] != "pod1" || sbs.Status.Metadata.Name != "pod1" || sbs.Status.CreatedAt == 0 {
		t.Fatalf("PodSandboxStatus = %v, %v", sbs, err)
	}
	if ports := e.net.attached[sbID].Ports; len(ports) != 1 || ports[0].HostPort != 18080 || ports[0].Protocol != "tcp" {
		t.Errorf("CNI port mappings = %+v", ports)
	}

	// A long-running busybox container writing to both streams.
	c1 := e.createContainer(sbID, pod, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "c1"},
		Image:    &runtimeapi.ImageSpec{Image: "busybox"},
		Command:  []string{"sh", "-c", "trap '' TERM; echo hello; echo oops >&2; printf partial; while sleep 0.2; do [ -f /tmp/go ] && rm /tmp/go && echo after-restart; done"},
		Envs:     []*runtimeapi.KeyValue{{Key: "FOO", Value: []byte("bar")}},
		LogPath:  "c1/0.log",
		Labels:   map[string]string{"role": "main"},
	})
	cs := e.waitState(c1, runtimeapi.ContainerState_CONTAINER_RUNNING)
	if cs.LogPath != filepath.Join(logDir, "c1/0.log") || cs.Image.Image != "docker.io/library/busybox:latest" ||
		cs.ImageRef != bs.Image.RepoDigests[0] || cs.StartedAt == 0 || cs.Labels["role"] != "main" {
		t.Errorf("ContainerStatus = %v", cs)
	}
	logText := waitFileContains(t, cs.LogPath, " stdout F hello\n", " stderr F oops\n")
	for _, line := range strings.Split(strings.TrimSpace(logText), "\n") {
		ts, _, _ := strings.Cut(line, " ")
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Errorf("log line %q: bad timestamp: %v", line, err)
		}
	}

	// Stats come from the task's cgroup and the writable snapshot.
	stats, err := e.rt.ContainerStats(ctx, &runtimeapi.ContainerStatsRequest{ContainerId: c1})
	if err != nil || stats.Stats.Cpu.GetUsageCoreNanoSeconds().GetValue() == 0 || stats.Stats.Memory.GetWorkingSetBytes().GetValue() == 0 ||
		stats.Stats.WritableLayer == nil || stats.Stats.Attributes.Id != c1 {
		t.Errorf("ContainerStats = %v, %v", stats, err)
	}
	listed, err := e.rt.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{Filter: &runtimeapi.ContainerStatsFilter{
		LabelSelector: map[string]string{"role": "main"}}})
	if err != nil || len(listed.Stats) != 1 {
		t.Errorf("ListContainerStats(role=main) = %v, %v", listed, err)
	}

	// In-place resize reaches the running container's cgroup.
	if _, err := e.rt.UpdateContainerResources(ctx, &runtimeapi.UpdateContainerResourcesRequest{ContainerId: c1,
		Linux: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 64 << 20, CpuShares: 512}}); err != nil {
		t.Fatalf("UpdateContainerResources: %v", err)
	}
	limit, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory", e.cgroup, c1, "memory.limit_in_bytes"))
	if err != nil || strings.TrimSpace(string(limit)) != fmt.Sprint(64<<20) {
		t.Errorf("memory limit after update = %q, %v", limit, err)
	}

	// ExecSync keeps stdout and stderr apart and loses nothing, many times over.
	for i := 0; i < 20; i++ {
		ex, err := e.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: c1,
			Cmd: []string{"sh", "-c", fmt.Sprintf("echo out%d; echo err%d >&2; cat /etc/hostname; exit 3", i, i)}})
		if err != nil {
			t.Fatalf("ExecSync: %v", err)
		}
		if string(ex.Stdout) != fmt.Sprintf("out%d\npod1\n", i) || string(ex.Stderr) != fmt.Sprintf("err%d\n", i) || ex.ExitCode != 3 {
			t.Fatalf("ExecSync #%d = stdout %q stderr %q exit %d", i, ex.Stdout, ex.Stderr, ex.ExitCode)
		}
	}
	// The pod's /dev/shm is one tmpfs shared by its containers.
	if _, err := e.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: c1, Cmd: []string{"touch", "/dev/shm/marker"}}); err != nil {
		t.Fatal(err)
	}
	shm := filepath.Join(e.cfg.StateDir, "sandboxes", sbID, "shm")
	if _, err := os.Stat(filepath.Join(shm, "marker")); err != nil {
		t.Errorf("container's /dev/shm is not the sandbox's: %v", err)
	}
	ex, err := e.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: c1, Cmd: []string{"sh", "-c", "cat /etc/resolv.conf; env"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"nameserver 10.96.0.10", "search default.svc.cluster.local", "options ndots:5", "FOO=bar", "FROM_IMAGE=yes", "HOSTNAME=pod1"} {
		if !strings.Contains(string(ex.Stdout), want) {
			t.Errorf("exec output lacks %q:\n%s", want, ex.Stdout)
		}
	}
	_, err = e.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: c1, Cmd: []string{"sleep", "10"}, Timeout: 1})
	wantCode(t, err, codes.DeadlineExceeded, "ExecSync past its timeout")

	// A container from the pause image, and one that exits while no server runs.
	c2 := e.createContainer(sbID, pod, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "c2"}, Image: &runtimeapi.ImageSpec{Image: DefaultPauseImage}})
	e.waitState(c2, runtimeapi.ContainerState_CONTAINER_RUNNING)
	c3 := e.createContainer(sbID, pod, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "c3"}, Image: &runtimeapi.ImageSpec{Image: "busybox"},
		Command: []string{"sh", "-c", "sleep 2; exit 7"}})
	_, err = e.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sbID, SandboxConfig: pod, Config: &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "c3"}, Image: &runtimeapi.ImageSpec{Image: "busybox"}}})
	wantCode(t, err, codes.AlreadyExists, "CreateContainer(same name)")

	before := e.containerStatus(c1)
	e.stopServer()
	time.Sleep(3 * time.Second) // c3 exits meanwhile
	e.startServer()

	// The new server sees the same world.
	sbList, err := e.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil || len(sbList.Items) != 1 || sbList.Items[0].Id != sbID || sbList.Items[0].State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Fatalf("ListPodSandbox after restart = %v, %v", sbList, err)
	}
	after := e.containerStatus(c1)
	if after.State != runtimeapi.ContainerState_CONTAINER_RUNNING || after.StartedAt != before.StartedAt || after.CreatedAt != before.CreatedAt {
		t.Fatalf("c1 after restart = %v, before %v", after, before)
	}
	exited := e.waitState(c3, runtimeapi.ContainerState_CONTAINER_EXITED)
	if exited.ExitCode != 7 || exited.Reason != "Error" || exited.FinishedAt == 0 {
		t.Errorf("c3 after restart = %v", exited)
	}
	// Only the two running containers keep FIFOs.
	if fifos, _ := filepath.Glob(filepath.Join(e.cfg.StateDir, "io", "*", "*-stdout")); len(fifos) != 2 {
		t.Errorf("FIFOs after recovery = %q, want those of c1 and c2", fifos)
	}
	running, err := e.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
		State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}}})
	if err != nil || len(running.Containers) != 2 {
		t.Fatalf("running containers after restart = %v, %v", running, err)
	}
	byLabel, err := e.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
		LabelSelector: map[string]string{"role": "main"}}})
	if err != nil || len(byLabel.Containers) != 1 || byLabel.Containers[0].Id != c1 {
		t.Fatalf("containers by label = %v, %v", byLabel, err)
	}
	// Output written after the restart still reaches the log through the re-attached FIFOs.
	if ex, err := e.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: c1, Cmd: []string{"touch", "/tmp/go"}}); err != nil || ex.ExitCode != 0 {
		t.Fatalf("exec touch: %v %q", err, ex.GetStderr())
	}
	waitFileContains(t, cs.LogPath, " stdout P partial\n", " stdout F after-restart\n")

	// Log rotation: the kubelet renames the file and asks for a new one.
	if err := os.Rename(cs.LogPath, cs.LogPath+".1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.ReopenContainerLog(ctx, &runtimeapi.ReopenContainerLogRequest{ContainerId: c1}); err != nil {
		t.Fatalf("ReopenContainerLog: %v", err)
	}
	if _, err := e.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: c1, Cmd: []string{"touch", "/tmp/go"}}); err != nil {
		t.Fatal(err)
	}
	waitFileContains(t, cs.LogPath, " stdout F after-restart\n")

	// pause ends on SIGTERM with status 0.
	start := time.Now()
	if _, err := e.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: c2, Timeout: 10}); err != nil {
		t.Fatalf("StopContainer(c2): %v", err)
	}
	if st := e.containerStatus(c2); st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 0 ||
		st.Reason != "Completed" || time.Since(start) > 5*time.Second {
		t.Errorf("c2 after stop = %v (took %v)", st, time.Since(start))
	}

	// c1 ignores SIGTERM: the stop timeout ends in SIGKILL.
	start = time.Now()
	if _, err := e.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: c1, Timeout: 1}); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	stopped := e.containerStatus(c1)
	if stopped.State != runtimeapi.ContainerState_CONTAINER_EXITED || stopped.ExitCode != 137 || stopped.Reason != "Error" || time.Since(start) < time.Second {
		t.Errorf("c1 after stop = %v (took %v)", stopped, time.Since(start))
	}
	if _, err := e.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: c1, Timeout: 1}); err != nil {
		t.Errorf("second StopContainer: %v", err)
	}
	_, err = e.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: c1, Cmd: []string{"true"}})
	wantCode(t, err, codes.FailedPrecondition, "ExecSync in an exited container")

	// Unknown IDs: status calls fail, stop and remove succeed.
	_, err = e.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: "nope"})
	wantCode(t, err, codes.NotFound, "ContainerStatus(unknown)")
	_, err = e.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: "nope"})
	wantCode(t, err, codes.NotFound, "PodSandboxStatus(unknown)")
	for name, call := range map[string]func() error{
		"StopContainer": func() error {
			_, err := e.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: "nope"})
			return err
		},
		"RemoveContainer": func() error {
			_, err := e.rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: "nope"})
			return err
		},
		"StopPodSandbox": func() error {
			_, err := e.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: "nope"})
			return err
		},
		"RemovePodSandbox": func() error {
			_, err := e.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: "nope"})
			return err
		},
	} {
		if err := call(); err != nil {
			t.Errorf("%s(unknown) = %v, want success", name, err)
		}
	}

	// Stop and remove the pod; both twice.
	netns := e.net.attached[sbID].NetnsPath
	for i := 0; i < 2; i++ {
		if _, err := e.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sbID}); err != nil {
			t.Fatalf("StopPodSandbox #%d: %v", i, err)
		}
	}
	sbs, err = e.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sbID})
	if err != nil || sbs.Status.State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Fatalf("PodSandboxStatus after stop = %v, %v", sbs, err)
	}
	if _, ok := e.net.attached[sbID]; ok {
		t.Error("sandbox still attached to the network after stop")
	}
	if _, err := os.Stat(shm); !os.IsNotExist(err) {
		t.Errorf("sandbox shm %s still there after stop: %v", shm, err)
	}
	if _, err := os.Stat(netns); !os.IsNotExist(err) {
		t.Errorf("netns %s still exists after stop: %v", netns, err)
	}
	if st := e.containerStatus(c2); st.State != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Errorf("c2 after sandbox stop = %v", st.State)
	}
	for i := 0; i < 2; i++ {
		if _, err := e.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sbID}); err != nil {
			t.Fatalf("RemovePodSandbox #%d: %v", i, err)
		}
	}
	all, err := e.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil || len(all.Containers) != 0 {
		t.Fatalf("containers after sandbox removal = %v, %v", all, err)
	}
	if _, err := e.img.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: "busybox"}}); err != nil {
		t.Fatalf("RemoveImage: %v", err)
	}
	gone, err := e.img.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: pull.ImageRef}})
	if err != nil || gone.Image != nil {
		t.Fatalf("ImageStatus after RemoveImage = %v, %v", gone, err)
	}
}

func TestIntegrationHostNetworkPod(t *testing.T) {
	e := newTestEnv(t)
	ctx := e.ctx
	e.startRegistry()
	if _, err := e.img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "docker.io/library/busybox:latest"}}); err != nil {
		t.Fatalf("PullImage: %v", err)
	}
	pod := podConfig("hostpod", "")
	pod.DnsConfig = nil
	pod.PortMappings = nil
	pod.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{
		Network: runtimeapi.NamespaceMode_NODE}}
	run, err := e.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pod})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	if len(e.net.attached) != 0 || len(e.net.netns) != 0 {
		t.Fatalf("host-network pod touched the pod network: %v %v", e.net.attached, e.net.netns)
	}
	c := e.createContainer(run.PodSandboxId, pod, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "c"}, Image: &runtimeapi.ImageSpec{Image: "busybox"},
		Command: []string{"sleep", "1000"}})
	e.waitState(c, runtimeapi.ContainerState_CONTAINER_RUNNING)
	ex, err := e.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: c, Cmd: []string{"sh", "-c", "hostname; cat /etc/resolv.conf"}})
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	hostResolv, _ := os.ReadFile("/etc/resolv.conf")
	if want := host + "\n" + string(hostResolv); string(ex.Stdout) != want {
		t.Errorf("host-network exec = %q, want %q", ex.Stdout, want)
	}
	if _, err := e.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: run.PodSandboxId}); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
}

// A failed CNI ADD, which runs while the pause container is made, leaves nothing behind:
// no pause container or task, no netns, no reserved name, no sandbox directory, and the
// half-done ADD is undone with a DEL.
func TestIntegrationSandboxNetworkFailureCleansUp(t *testing.T) {
	e := newTestEnv(t)
	ctx := e.ctx
	e.net.attachErr = errors.New("bridge plugin failed")
	pod := podConfig("netfail", "")
	_, err := e.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pod})
	if err == nil || !strings.Contains(err.Error(), "bridge plugin failed") {
		t.Fatalf("RunPodSandbox = %v, want the CNI error", err)
	}
	if len(e.net.attached) != 0 || len(e.net.netns) != 0 || e.net.detaches != 1 {
		t.Errorf("network left: attached %v, netns %v, %d DELs", e.net.attached, e.net.netns, e.net.detaches)
	}
	c, err := containerd.New(e.daemon.Address())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	nsCtx := namespaces.WithNamespace(ctx, e.cfg.Namespace)
	if list, err := c.Containers(nsCtx); err != nil || len(list) != 0 {
		t.Errorf("containerd containers left: %d, %v", len(list), err)
	}
	if entries, _ := os.ReadDir(filepath.Join(e.cfg.RootDir, "sandboxes")); len(entries) != 0 {
		t.Errorf("sandbox directories left: %v", entries)
	}
	list, err := e.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil || len(list.Items) != 0 {
		t.Errorf("ListPodSandbox = %v, %v; want none", list, err)
	}
	e.net.attachErr = nil
	run, err := e.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pod})
	if err != nil {
		t.Fatalf("RunPodSandbox with the same name after a failure: %v", err)
	}
	st, err := e.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: run.PodSandboxId})
	if err != nil || st.Status.GetNetwork().GetIp() == "" || st.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Fatalf("PodSandboxStatus = %v, %v", st, err)
	}
	if _, err := e.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: run.PodSandboxId}); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
}

// TestIntegrationRestartReleasesLostSandboxes: a RunPodSandbox cut short by a crash leaves
// a netns, an IP and a directory but no pause container; the restarted server gives them
// back and leaves the sandboxes containerd has alone.
func TestIntegrationRestartReleasesLostSandboxes(t *testing.T) {
	e := newTestEnv(t)
	ctx := e.ctx
	kept, err := e.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: podConfig("kept", "")})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	lost := newID()
	netns, err := e.net.CreateNetns(lost)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.net.Attach(ctx, network.Pod{ID: lost, NetnsPath: netns}); err != nil {
		t.Fatal(err)
	}
	lostDir := filepath.Join(e.cfg.RootDir, "sandboxes", lost)
	if err := os.MkdirAll(lostDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The FIFOs of a task whose deletion a crash cut short.
	staleFIFOs := filepath.Join(e.cfg.StateDir, "io", "stale")
	if err := os.MkdirAll(staleFIFOs, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(staleFIFOs, "x-stdout"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A sandbox without a pause container had pinned its namespaces.
	lostState := e.srv.svc.sandboxStateDir(lost)
	if err := os.MkdirAll(lostState, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := pinNamespaces(lostState, e.srv.svc.sandboxPins(lost), "lost", nil); err != nil {
		t.Fatal(err)
	}

	e.stopServer()
	e.startServer()

	held, _ := e.net.Sandboxes()
	if _, ok := held[lost]; ok {
		t.Errorf("the lost sandbox still holds network state: %v", held)
	}
	for _, dir := range []string{lostDir, lostState, staleFIFOs} {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("the lost sandbox's directory %s is still there: %v", dir, err)
		}
	}
	if path, ok := held[kept.PodSandboxId]; !ok || path == "" {
		t.Errorf("the kept sandbox lost its network: %v", held)
	}
	st, err := e.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: kept.PodSandboxId})
	if err != nil || st.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Fatalf("kept sandbox after the restart: %v, %v", st, err)
	}
	if _, err := os.Stat(filepath.Join(e.cfg.RootDir, "sandboxes", kept.PodSandboxId)); err != nil {
		t.Errorf("the kept sandbox's directory: %v", err)
	}
}

// TestIntegrationRestartAfterStartCutShort: StartContainer made the task and the server died
// before recording the start. A task that never started is dropped and the container can
// still be started; one that was started is adopted as running.
func TestIntegrationRestartAfterStartCutShort(t *testing.T) {
	e := newTestEnv(t)
	ctx := e.ctx
	e.startRegistry()
	if _, err := e.img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "busybox"}}); err != nil {
		t.Fatalf("PullImage: %v", err)
	}
	pod := podConfig("cutshort", "")
	run, err := e.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pod})
	if err != nil {
		t.Fatal(err)
	}
	create := func(name string) string {
		resp, err := e.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: run.PodSandboxId, SandboxConfig: pod,
			Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: name},
				Image: &runtimeapi.ImageSpec{Image: "busybox"}, Command: []string{"sleep", "1000"}}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.ContainerId
	}
	neverStarted, started := create("never"), create("started")
	c, err := containerd.New(e.daemon.Address())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	nsCtx := namespaces.WithNamespace(ctx, e.cfg.Namespace)
	for _, id := range []string{neverStarted, started} {
		cc, err := c.LoadContainer(nsCtx, id)
		if err != nil {
			t.Fatal(err)
		}
		task, err := cc.NewTask(nsCtx, cio.NullIO)
		if err != nil {
			t.Fatal(err)
		}
		if id == started {
			if err := task.Start(nsCtx); err != nil {
				t.Fatal(err)
			}
		}
	}

	e.stopServer()
	e.startServer()

	if st := e.containerStatus(neverStarted); st.State != runtimeapi.ContainerState_CONTAINER_CREATED {
		t.Errorf("never-started container after the restart: %v", st.State)
	}
	if _, err := e.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: neverStarted}); err != nil {
		t.Errorf("StartContainer after the restart: %v", err)
	}
	e.waitState(neverStarted, runtimeapi.ContainerState_CONTAINER_RUNNING)
	st := e.containerStatus(started)
	if st.State != runtimeapi.ContainerState_CONTAINER_RUNNING || st.StartedAt == 0 {
		t.Errorf("started container after the restart: %v, startedAt %d", st.State, st.StartedAt)
	}
	if _, err := e.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: started}); err != nil {
		t.Errorf("StopContainer of the adopted container: %v", err)
	}
	e.waitState(started, runtimeapi.ContainerState_CONTAINER_EXITED)
}
