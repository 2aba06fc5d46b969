package agent

import (
	"context"
	"fmt"
	"sort"
	"strconv"

	"k8s.io/apimachinery/pkg/types"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// runtimePod is what the runtime holds for one pod UID: its sandboxes and containers with
// their full statuses, newest first. The pod worker reads it fresh from CRI at each sync.
type runtimePod struct {
	uid        types.UID
	name       string
	namespace  string
	sandboxes  []*runtimeapi.PodSandbox
	containers []*runtimeapi.ContainerStatus
	// sandboxStatus is the status of sandboxes[0], nil when there is no sandbox.
	sandboxStatus *runtimeapi.PodSandboxStatus
	// sandboxOf maps a container ID to its sandbox ID (container statuses lack it).
	sandboxOf map[string]string
}

// getRuntimePod lists one pod's sandboxes and containers, restricted to those this agent made.
func (a *Agent) getRuntimePod(ctx context.Context, uid types.UID) (*runtimePod, error) {
	rt := a.cfg.Runtime
	sel := a.uidSelector(uid)
	sandboxes, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("list sandboxes of pod %s: %w", uid, err)
	}
	containers, err := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("list containers of pod %s: %w", uid, err)
	}
	rp := &runtimePod{uid: uid, sandboxes: sandboxes, sandboxOf: make(map[string]string, len(containers))}
	for _, c := range containers {
		rp.sandboxOf[c.Id] = c.PodSandboxId
	}
	sort.Slice(rp.sandboxes, func(i, j int) bool { return newerSandbox(rp.sandboxes[i], rp.sandboxes[j]) })
	if len(sandboxes) > 0 {
		rp.name = sandboxes[0].GetMetadata().GetName()
		rp.namespace = sandboxes[0].GetMetadata().GetNamespace()
		resp, err := rt.PodSandboxStatus(ctx, sandboxes[0].Id, false)
		if err != nil {
			return nil, fmt.Errorf("status of sandbox %s: %w", sandboxes[0].Id, err)
		}
		rp.sandboxStatus = resp.GetStatus()
	}
	rp.containers, err = containerStatuses(ctx, rt, containers)
	if err != nil {
		return nil, err
	}
	return rp, nil
}

// containerStatuses fetches the status of each listed container, newest attempt first.
// A container removed between the list and the status call is skipped.
func containerStatuses(ctx context.Context, rt internalapi.RuntimeService, cs []*runtimeapi.Container) ([]*runtimeapi.ContainerStatus, error) {
	out := make([]*runtimeapi.ContainerStatus, 0, len(cs))
	for _, c := range cs {
		resp, err := rt.ContainerStatus(ctx, c.Id, false)
		if err != nil {
			if isNotFound(err) {
				continue
			}
			return nil, fmt.Errorf("status of container %s: %w", c.Id, err)
		}
		st := resp.GetStatus()
		if st == nil {
			continue
		}
		// Some runtimes leave labels/annotations out of the status; the list has them.
		if st.Labels == nil {
			st.Labels = c.Labels
		}
		if st.Annotations == nil {
			st.Annotations = c.Annotations
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return newerContainer(out[i], out[j]) })
	return out, nil
}

func newerSandbox(x, y *runtimeapi.PodSandbox) bool {
	if x.GetMetadata().GetAttempt() != y.GetMetadata().GetAttempt() {
		return x.GetMetadata().GetAttempt() > y.GetMetadata().GetAttempt()
	}
	return x.CreatedAt > y.CreatedAt
}

func newerContainer(x, y *runtimeapi.ContainerStatus) bool {
	if x.GetMetadata().GetAttempt() != y.GetMetadata().GetAttempt() {
		return x.GetMetadata().GetAttempt() > y.GetMetadata().GetAttempt()
	}
	return x.CreatedAt > y.CreatedAt
}

// readySandbox returns the newest sandbox if it is ready.
func (rp *runtimePod) readySandbox() *runtimeapi.PodSandbox {
	if len(rp.sandboxes) == 0 || rp.sandboxes[0].State != runtimeapi.PodSandboxState_SANDBOX_READY {
		return nil
	}
	return rp.sandboxes[0]
}

// containersNamed returns the containers of one spec container, newest attempt first.
func (rp *runtimePod) containersNamed(name string) []*runtimeapi.ContainerStatus {
	var out []*runtimeapi.ContainerStatus
	for _, c := range rp.containers {
		if c.GetMetadata().GetName() == name {
			out = append(out, c)
		}
	}
	return out
}

// containersNamedIn is containersNamed restricted to one sandbox.
func (rp *runtimePod) containersNamedIn(name, sandboxID string) []*runtimeapi.ContainerStatus {
	var out []*runtimeapi.ContainerStatus
	for _, c := range rp.containersNamed(name) {
		if rp.sandboxOf[c.Id] == sandboxID {
			out = append(out, c)
		}
	}
	return out
}

// runningContainers are the containers that still need a StopContainer.
func (rp *runtimePod) runningContainers() []*runtimeapi.ContainerStatus {
	var out []*runtimeapi.ContainerStatus
	for _, c := range rp.containers {
		if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING || c.State == runtimeapi.ContainerState_CONTAINER_UNKNOWN {
			out = append(out, c)
		}
	}
	return out
}

func (rp *runtimePod) empty() bool {
	return len(rp.sandboxes) == 0 && len(rp.containers) == 0
}

// restartCountOf reads the restart count the agent stored on a container.
func restartCountOf(c *runtimeapi.ContainerStatus) int {
	if n, err := strconv.Atoi(c.GetAnnotations()[annotationRestartCount]); err == nil {
		return n
	}
	return int(c.GetMetadata().GetAttempt())
}
