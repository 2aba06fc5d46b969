package cri

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// execOut runs cmd in container id and returns its trimmed stdout, failing on a non-zero exit.
func (e *testEnv) execOut(id string, cmd ...string) string {
	e.t.Helper()
	ex, err := e.rt.ExecSync(e.ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd})
	if err != nil || ex.ExitCode != 0 {
		e.t.Fatalf("exec %v in %s: %v (exit %d, stderr %q)", cmd, id, err, ex.GetExitCode(), ex.GetStderr())
	}
	return strings.TrimSpace(string(ex.Stdout))
}

// pullBusybox serves the test images and pulls busybox.
func (e *testEnv) pullBusybox() {
	e.t.Helper()
	e.startRegistry()
	if _, err := e.img.PullImage(e.ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "busybox"}}); err != nil {
		e.t.Fatal(err)
	}
}

// sleeper is a container with its own PID namespace, as kubelet makes them.
func sleeper(name string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image: &runtimeapi.ImageSpec{Image: "busybox"}, Command: []string{"sleep", "1000"},
		Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER}}}}
}

// kubeletPod is a pod config with the namespace options kubelet gives a pod that does not
// share its process namespace (the CRI default, zero, is a pod-wide PID namespace).
func kubeletPod(name string) *runtimeapi.PodSandboxConfig {
	pod := podConfig(name, "")
	pod.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{
		NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER}}
	return pod
}

// TestIntegrationPinnedSandbox: a sandbox whose containers do not share a PID namespace
// runs no pause container. Its containers still share one network, IPC and UTS
// namespace, which carry the pod's hostname and sysctls, through a restart of the
// server; a stop releases the namespaces and a remove the containerd record.
func TestIntegrationPinnedSandbox(t *testing.T) {
	e := newTestEnv(t)
	ctx := e.ctx
	e.pullBusybox()
	pod := kubeletPod("pinned")
	pod.Linux.Sysctls = map[string]string{"kernel.shm_rmid_forced": "1", "net.ipv4.ip_unprivileged_port_start": "1001"}
	run, err := e.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pod})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	id := run.PodSandboxId
	cc, err := e.srv.svc.client.LoadContainer(e.srv.svc.ns(ctx), id)
	if err != nil {
		t.Fatalf("the sandbox has no containerd record: %v", err)
	}
	if _, err := cc.Task(e.srv.svc.ns(ctx), nil); !errdefs.IsNotFound(err) {
		t.Fatalf("the sandbox has a task (a pause container): %v", err)
	}

	a := e.createContainer(id, pod, sleeper("a"))
	e.waitState(a, runtimeapi.ContainerState_CONTAINER_RUNNING)
	e.stopServer()
	e.startServer()
	st, err := e.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
	if err != nil || st.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Fatalf("sandbox after a restart: %v, %v", st, err)
	}
	b := e.createContainer(id, pod, sleeper("b")) // made after the restart
	e.waitState(b, runtimeapi.ContainerState_CONTAINER_RUNNING)
	// A second restart re-attaches to both tasks' FIFOs, which the first kept.
	e.stopServer()
	e.startServer()
	for _, c := range []string{a, b} {
		if st := e.containerStatus(c); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Fatalf("container %s after a second restart: %v", c, st.State)
		}
	}

	hostIPCNS, _ := os.Readlink("/proc/thread-self/ns/ipc")
	seen := map[string]string{}
	for _, c := range []string{a, b} {
		got := e.execOut(c, "sh", "-c", "hostname; for n in ipc uts net; do readlink /proc/self/ns/$n; done; "+
			"cat /proc/sys/kernel/shm_rmid_forced /proc/sys/net/ipv4/ip_unprivileged_port_start")
		lines := strings.Split(got, "\n")
		if len(lines) != 6 || lines[0] != "pinned" || lines[4] != "1" || lines[5] != "1001" {
			t.Errorf("container %s sees %q, want hostname pinned and the pod's sysctls", c, lines)
		}
		if lines[1] == hostIPCNS {
			t.Errorf("container %s is in the host's IPC namespace", c)
		}
		ns := strings.Join(lines[1:4], " ")
		if seen["ns"] != "" && seen["ns"] != ns {
			t.Errorf("containers are in different namespaces: %s and %s", seen["ns"], ns)
		}
		seen["ns"] = ns
	}
	// The server's threads went back to the host's namespaces after pinning the pod's.
	tasks, _ := filepath.Glob("/proc/self/task/*/ns/ipc")
	for _, task := range tasks {
		if ns, _ := os.Readlink(task); ns != hostIPCNS {
			t.Errorf("thread %s of the server is left in IPC namespace %s", task, ns)
		}
	}
	// Each container has its own PID namespace: its first process is its own.
	if got := e.execOut(b, "cat", "/proc/1/cmdline"); !strings.HasPrefix(got, "sleep") {
		t.Errorf("pid 1 of container b runs %q, want its own sleep", got)
	}
	// Containers may not ask for a pod PID namespace the sandbox lacks.
	shared := sleeper("shared-pid")
	shared.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	_, err = e.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: id, Config: shared, SandboxConfig: pod})
	wantCode(t, err, codes.FailedPrecondition, "CreateContainer(pid POD in a sandbox without one)")

	pins := e.srv.svc.sandboxPins(id)
	if _, err := e.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatalf("StopPodSandbox: %v", err)
	}
	for _, p := range []string{pins.IPC, pins.UTS, e.srv.svc.sandboxStateDir(id)} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left after the stop: %v", p, err)
		}
	}
	st, err = e.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
	if err != nil || st.Status.State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Fatalf("sandbox after the stop: %v, %v", st, err)
	}
	e.net.mu.Lock()
	detaches := e.net.detaches
	e.net.mu.Unlock()
	if _, err := e.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
	e.net.mu.Lock()
	if e.net.detaches != detaches {
		t.Errorf("RemovePodSandbox ran CNI DEL again after StopPodSandbox")
	}
	e.net.mu.Unlock()
	if _, err := e.srv.svc.client.LoadContainer(e.srv.svc.ns(ctx), id); !errdefs.IsNotFound(err) {
		t.Errorf("the sandbox record outlived RemovePodSandbox: %v", err)
	}
}

// TestIntegrationSharedPIDSandbox: a sandbox whose containers share a PID namespace has
// a pause container, whose process is their pid 1.
func TestIntegrationSharedPIDSandbox(t *testing.T) {
	e := newTestEnv(t)
	ctx := e.ctx
	e.pullBusybox()
	pod := podConfig("shared-pid", "")
	podPID := &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD}
	pod.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: podPID}
	run, err := e.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pod})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	c := sleeper("c")
	c.Linux.SecurityContext.NamespaceOptions = podPID
	id := e.createContainer(run.PodSandboxId, pod, c)
	e.waitState(id, runtimeapi.ContainerState_CONTAINER_RUNNING)
	if got := e.execOut(id, "cat", "/proc/1/cmdline"); !strings.Contains(got, "pause") {
		t.Errorf("pid 1 of the pod runs %q, want the pause process", got)
	}
	if got := e.execOut(id, "hostname"); got != "shared-pid" {
		t.Errorf("hostname %q", got)
	}
	// The holder shows the pod nothing of the host: its root and namespaces are closed
	// to the pod's processes, even root ones (no CAP_SYS_PTRACE).
	if got := e.execOut(id, "sh", "-c", "ls /proc/1/root/ 2>&1; readlink /proc/1/ns/net 2>&1; true"); strings.Contains(got, "etc") ||
		strings.Contains(got, "net:[") {
		t.Errorf("the pod sees through its PID 1:\n%s", got)
	}
	ns := e.execOut(id, "readlink", "/proc/self/ns/pid")

	// The holder is not the server's: it survives a restart and is found again.
	e.stopServer()
	e.startServer()
	c2 := sleeper("c2")
	c2.Linux.SecurityContext.NamespaceOptions = podPID
	id2 := e.createContainer(run.PodSandboxId, pod, c2)
	e.waitState(id2, runtimeapi.ContainerState_CONTAINER_RUNNING)
	if got := e.execOut(id2, "readlink", "/proc/self/ns/pid"); got != ns {
		t.Errorf("a container made after the restart is in PID namespace %s, the pod's is %s", got, ns)
	}
	holder := e.srv.svc.store.listSandboxes()[0].meta.Holder
	mounts, _ := cgroupMounts()
	procs, err := os.ReadFile(filepath.Join(mounts[0], e.cgroup, run.PodSandboxId, "cgroup.procs"))
	if err != nil || strings.TrimSpace(string(procs)) != strconv.Itoa(holder.PID) {
		t.Errorf("the sandbox's cgroup holds %q (%v), want the holder %d", procs, err, holder.PID)
	}
	if _, err := e.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: run.PodSandboxId}); err != nil {
		t.Fatalf("StopPodSandbox: %v", err)
	}
	if _, err := pidNamespaceOf(holder.PID); err == nil {
		t.Errorf("the PID namespace holder %d outlived StopPodSandbox", holder.PID)
	}
	for _, m := range mounts {
		dir := filepath.Join(m, e.cgroup, run.PodSandboxId)
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("the holder's cgroup %s is left: %v", dir, err)
		}
	}
}

// TestIntegrationPinnedSandboxRefusesHostSysctls: a sysctl the pod would set in a
// namespace it shares with the node is refused before anything is made.
func TestIntegrationPinnedSandboxRefusesHostSysctls(t *testing.T) {
	e := newTestEnv(t)
	for name, sysctls := range map[string]map[string]string{
		"not namespaced": {"vm.overcommit_memory": "1"},
		"host network":   {"net.ipv4.ip_forward": "1"},
		"unknown sysctl": {"net.ipv4.no_such_knob": "1"},
	} {
		pod := kubeletPod("sysctl")
		pod.Linux.Sysctls = sysctls
		if name == "host network" {
			pod.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
		}
		_, err := e.rt.RunPodSandbox(e.ctx, &runtimeapi.RunPodSandboxRequest{Config: pod})
		if name == "unknown sysctl" {
			if err == nil || !strings.Contains(err.Error(), "no_such_knob") {
				t.Errorf("%s: RunPodSandbox = %v, want an error naming it", name, err)
			}
		} else {
			wantCode(t, err, codes.InvalidArgument, name)
		}
		list, _ := e.rt.ListPodSandbox(e.ctx, &runtimeapi.ListPodSandboxRequest{})
		if len(list.GetItems()) != 0 {
			t.Fatalf("%s: a refused sandbox is listed: %v", name, list.Items)
		}
		if entries, _ := os.ReadDir(e.cfg.StateDir + "/sandboxes"); len(entries) != 0 {
			t.Errorf("%s: state left behind: %v", name, entries)
		}
	}
}

// TestIntegrationRestartKillsLostHolder: a RunPodSandbox cut short after it started the
// PID namespace holder, before the sandbox was recorded in containerd, leaves a process
// that nothing lists; the restarted server kills it and removes its cgroup.
func TestIntegrationRestartKillsLostHolder(t *testing.T) {
	e := newTestEnv(t)
	run, err := e.rt.RunPodSandbox(e.ctx, &runtimeapi.RunPodSandboxRequest{Config: podConfig("lost-holder", "")})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	holder := e.srv.svc.store.listSandboxes()[0].meta.Holder
	if holder == nil {
		t.Fatal("a sandbox sharing its PID namespace has no holder")
	}
	// And one cut short between recording the holder's cgroup and starting it.
	early := newID()
	earlyCgroup := path.Join(e.cgroup, early)
	if err := os.MkdirAll(e.srv.svc.sandboxStateDir(early), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := writeJSONFile(e.srv.svc.holderFile(early), &pidHolder{Cgroup: earlyCgroup}); err != nil {
		t.Fatal(err)
	}
	stray := exec.Command("sleep", "1000")
	if err := stray.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- stray.Wait() }()
	if err := addToCgroup(earlyCgroup, stray.Process.Pid); err != nil {
		t.Fatal(err)
	}
	e.stopServer()
	// What the crash kept from being written.
	c, err := containerd.New(e.daemon.Address())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.ContainerService().Delete(namespaces.WithNamespace(e.ctx, e.cfg.Namespace), run.PodSandboxId); err != nil {
		t.Fatal(err)
	}
	e.startServer()

	if _, err := pidNamespaceOf(holder.PID); err == nil {
		t.Errorf("the lost sandbox's holder %d still runs", holder.PID)
	}
	mounts, _ := cgroupMounts()
	for _, m := range mounts {
		if _, err := os.Stat(filepath.Join(m, holder.Cgroup)); !os.IsNotExist(err) {
			t.Errorf("the lost holder's cgroup is left in %s: %v", m, err)
		}
	}
	if _, err := os.Stat(e.srv.svc.sandboxStateDir(run.PodSandboxId)); !os.IsNotExist(err) {
		t.Errorf("the lost sandbox's state directory is left: %v", err)
	}
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		_ = stray.Process.Kill()
		t.Error("the process in an unstarted holder's cgroup was not killed")
	}
	for _, m := range mounts {
		if _, err := os.Stat(filepath.Join(m, earlyCgroup)); !os.IsNotExist(err) {
			t.Errorf("the unstarted holder's cgroup is left in %s: %v", m, err)
		}
	}
}

func TestProcessStart(t *testing.T) {
	start, err := processStart(os.Getpid())
	if err != nil || start == 0 {
		t.Fatalf("processStart(self) = %d, %v", start, err)
	}
	if again, _ := processStart(os.Getpid()); again != start {
		t.Errorf("start time changed: %d then %d", start, again)
	}
	if _, err := processStart(-1); err == nil {
		t.Error("processStart(-1) succeeded")
	}
}

// TestIntegrationAlwaysPause: with Config.AlwaysPause every sandbox is a pause container,
// as with containerd's CRI, whose namespaces the containers join, across a restart.
func TestIntegrationAlwaysPause(t *testing.T) {
	e := newTestEnv(t)
	e.stopServer()
	e.cfg.AlwaysPause = true
	e.startServer()
	e.pullBusybox()
	pod := kubeletPod("always-pause")
	run, err := e.rt.RunPodSandbox(e.ctx, &runtimeapi.RunPodSandboxRequest{Config: pod})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	ctx := e.srv.svc.ns(e.ctx)
	cc, err := e.srv.svc.client.LoadContainer(ctx, run.PodSandboxId)
	if err != nil {
		t.Fatal(err)
	}
	task, err := cc.Task(ctx, nil)
	if err != nil {
		t.Fatalf("the sandbox has no pause task: %v", err)
	}
	pauseUTS, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/uts", task.Pid()))
	e.stopServer()
	e.startServer()
	id := e.createContainer(run.PodSandboxId, pod, sleeper("c"))
	e.waitState(id, runtimeapi.ContainerState_CONTAINER_RUNNING)
	if got := e.execOut(id, "readlink", "/proc/self/ns/uts"); got != pauseUTS {
		t.Errorf("container in UTS namespace %s, the pause container's is %s", got, pauseUTS)
	}
	if got := e.execOut(id, "hostname"); got != "always-pause" {
		t.Errorf("hostname %q", got)
	}
	if _, err := e.rt.StopPodSandbox(e.ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: run.PodSandboxId}); err != nil {
		t.Fatalf("StopPodSandbox: %v", err)
	}
	if _, err := e.rt.RemovePodSandbox(e.ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: run.PodSandboxId}); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
	if _, err := e.srv.svc.client.LoadContainer(ctx, run.PodSandboxId); !errdefs.IsNotFound(err) {
		t.Errorf("the pause container outlived RemovePodSandbox: %v", err)
	}
}
