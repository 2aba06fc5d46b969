package cri

import (
	"os"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestIntegrationRemoveContainer: a container removed right after its stop is gone from
// the CRI at once, and from containerd (record and snapshot) soon after; one whose
// removal a restart interrupted is finished by the next server.
func TestIntegrationRemoveContainer(t *testing.T) {
	e := newTestEnv(t)
	ctx := e.ctx
	e.pullBusybox()
	pod := kubeletPod("remove")
	run, err := e.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pod})
	if err != nil {
		t.Fatal(err)
	}
	c, err := containerd.New(e.daemon.Address())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	nsCtx := namespaces.WithNamespace(ctx, e.cfg.Namespace)
	inContainerd := func(id string) bool {
		_, err := c.ContainerService().Get(nsCtx, id)
		if err != nil && !errdefs.IsNotFound(err) {
			t.Fatal(err)
		}
		return err == nil
	}

	id := e.createContainer(run.PodSandboxId, pod, sleeper("quick"))
	e.waitState(id, runtimeapi.ContainerState_CONTAINER_RUNNING)
	if _, err := e.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	list, err := e.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil || len(list.Containers) != 0 {
		t.Fatalf("ListContainers after the removal = %v, %v", list, err)
	}
	if _, err := e.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id}); err == nil {
		t.Fatalf("ContainerStatus of a removed container succeeded")
	}
	for deadline := time.Now().Add(10 * time.Second); inContainerd(id); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the removed container is still in containerd")
		}
	}
	if _, err := c.SnapshotService("overlayfs").Stat(nsCtx, id); !errdefs.IsNotFound(err) {
		t.Errorf("the removed container's snapshot: %v", err)
	}
	marks := func() []os.DirEntry { entries, _ := os.ReadDir(e.srv.svc.removingDir()); return entries }
	for deadline := time.Now().Add(5 * time.Second); len(marks()) != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("removal marks left: %v", marks())
		}
	}

	// A removal cut short: marked, still recorded.
	id = e.createContainer(run.PodSandboxId, pod, sleeper("cut-short"))
	if _, err := e.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	// And a creation cut short: a rootfs snapshot whose record was never made.
	orphan := newID()
	_, err = c.SnapshotService("overlayfs").Prepare(nsCtx, orphan, "", snapshots.WithLabels(map[string]string{labelRootfsOf: orphan}))
	if err != nil {
		t.Fatal(err)
	}
	svc := e.srv.svc
	e.stopServer()
	if err := svc.markRemoving(id); err != nil {
		t.Fatal(err)
	}
	e.startServer()
	if inContainerd(id) {
		t.Error("the restarted server did not finish removing the container")
	}
	if len(marks()) != 0 {
		t.Errorf("removal marks left after the restart: %v", marks())
	}
	list, err = e.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil || len(list.Containers) != 0 {
		t.Fatalf("ListContainers after the restart = %v, %v", list, err)
	}
	if _, err := c.SnapshotService("overlayfs").Stat(nsCtx, orphan); !errdefs.IsNotFound(err) {
		t.Errorf("the orphan rootfs snapshot after the restart: %v", err)
	}
	// The sandbox's containers' snapshots are not orphans.
	kept := e.createContainer(run.PodSandboxId, pod, sleeper("kept"))
	e.stopServer()
	e.startServer()
	if _, err := c.SnapshotService("overlayfs").Stat(nsCtx, kept); err != nil {
		t.Errorf("a live container's rootfs snapshot after a restart: %v", err)
	}
}
