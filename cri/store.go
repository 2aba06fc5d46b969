package cri

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// sandbox is the in-memory view of a pod sandbox; its metadata is persisted as a
// containerd container extension on the sandbox's containerd container: the pause
// container, or a record that runs nothing when the namespaces are pinned.
type sandbox struct {
	meta sandboxMeta

	mu    sync.Mutex
	state runtimeapi.PodSandboxState
	// exited is closed when the pause task or PID namespace holder has exited (nil
	// until one runs, and for sandboxes without either).
	exited chan struct{}
	// pid of the running pause task or PID namespace holder, whose namespaces
	// containers join.
	pid uint32
	// networkDown is set once a stop has torn down the pod network.
	networkDown bool
	// holderFD is a pidfd of the running PID namespace holder (nil without one).
	holderFD *os.File
}

// sandboxMeta is what survives a server restart (JSON in the extension).
type sandboxMeta struct {
	ID          string
	Name        string // the unique name key derived from the CRI metadata
	Config      []byte // proto-encoded runtimeapi.PodSandboxConfig
	NetnsPath   string // empty with host networking
	IPs         []string
	CgroupsPath string
	CreatedAt   int64 // unix nanoseconds
	// Pinned is set for a sandbox without a pause container: its IPC and UTS namespaces
	// are bind-mounted at Pins (see namespaces.go). Sandboxes from before it have a pause.
	Pinned bool             `json:",omitempty"`
	Pins   pinnedNamespaces `json:",omitzero"`
	// Holder is the init of the PID namespace a pinned sandbox's containers share (see
	// sandbox_pidns.go); nil when they do not share one.
	Holder *pidHolder `json:",omitempty"`

	config *runtimeapi.PodSandboxConfig // decoded Config, not persisted
}

func (s *sandbox) State() runtimeapi.PodSandboxState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// podNamespaces are the paths of the namespaces a sandbox's containers join; an empty
// path means the host's (for PID: that the pod has none of its own).
type podNamespaces struct {
	Net, IPC, UTS, PID string
}

// namespaces returns the namespaces of a ready sandbox: its pinned ones, or its pause
// process's.
func (s *sandbox) namespaces() (podNamespaces, error) {
	s.mu.Lock()
	state, pid := s.state, s.pid
	s.mu.Unlock()
	hasProcess := !s.meta.Pinned || s.meta.Holder != nil
	if state != runtimeapi.PodSandboxState_SANDBOX_READY || (hasProcess && pid == 0) {
		return podNamespaces{}, fmt.Errorf("sandbox %s is not ready: %w", s.meta.ID, errdefs.ErrFailedPrecondition)
	}
	ns := podNamespaces{Net: s.meta.NetnsPath}
	proc := func(kind string) string { return fmt.Sprintf("/proc/%d/ns/%s", pid, kind) }
	if s.meta.Pinned {
		ns.IPC, ns.UTS = s.meta.Pins.IPC, s.meta.Pins.UTS
		if s.meta.Holder != nil {
			ns.PID = proc("pid")
		}
		return ns, nil
	}
	if !hostNetwork(s.meta.config) {
		ns.UTS = proc("uts")
	}
	// The pause process is in the host's IPC namespace when the pod is, and holds the
	// pod's PID namespace (or is in the host's).
	ns.IPC, ns.PID = proc("ipc"), proc("pid")
	return ns, nil
}

func (s *sandbox) setState(st runtimeapi.PodSandboxState) {
	s.mu.Lock()
	s.state = st
	s.mu.Unlock()
}

// container is the in-memory view of a CRI container.
type container struct {
	meta containerMeta

	mu     sync.Mutex
	status containerStatus
	// persistMu orders the writes of status to containerd: each writes the newest status,
	// so a start's write cannot land after, and undo, the exit's.
	persistMu sync.Mutex
	// exited is closed when the task's exit has been recorded (nil until started).
	exited chan struct{}
	// taskDeleted is closed once the exited task is deleted, after exited: a stop
	// returns without waiting for `runc delete`, a remove waits for it. Nil: no task
	// to wait for.
	taskDeleted chan struct{}
	// task is the running task, so that a stop needs no lookup; nil when none runs.
	task containerd.Task
	// oomKilled is set by the OOM event watcher before or after the exit.
	oomKilled bool
	// logs is the output of the running task, nil otherwise.
	logs *containerLog
	// user is the process identity from the OCI spec, loaded on first use.
	user *runtimeapi.ContainerUser
}

// containerMeta is fixed at creation and persisted as an extension.
type containerMeta struct {
	ID         string
	Name       string
	SandboxID  string
	Config     []byte // proto-encoded runtimeapi.ContainerConfig
	ImageRef   string // the resolved image name in containerd
	ImageID    string // config digest
	LogPath    string // absolute, empty when the kubelet asks for none
	StopSignal string
	CreatedAt  int64

	config *runtimeapi.ContainerConfig
}

// containerStatus changes over the container's life and is persisted as a second
// extension on each transition.
type containerStatus struct {
	State      runtimeapi.ContainerState
	Pid        uint32
	StartedAt  int64
	FinishedAt int64
	ExitCode   int32
	Reason     string
	Message    string
}

func (c *container) Status() containerStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

// store indexes sandboxes and containers by ID and reserves their names.
type store struct {
	mu         sync.RWMutex
	sandboxes  map[string]*sandbox
	containers map[string]*container
	names      map[string]string // name key -> ID, for both kinds
}

func newStore() *store {
	return &store{
		sandboxes:  map[string]*sandbox{},
		containers: map[string]*container{},
		names:      map[string]string{},
	}
}

// reserveName claims a name for id, failing with AlreadyExists if another ID holds it.
func (s *store) reserveName(name, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if owner, ok := s.names[name]; ok && owner != id {
		return fmt.Errorf("name %q is reserved for %q: %w", name, owner, errdefs.ErrAlreadyExists)
	}
	s.names[name] = id
	return nil
}

func (s *store) releaseName(name, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.names[name] == id {
		delete(s.names, name)
	}
}

func (s *store) addSandbox(sb *sandbox) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sandboxes[sb.meta.ID] = sb
	s.names[sb.meta.Name] = sb.meta.ID
}

func (s *store) addContainer(c *container) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.containers[c.meta.ID] = c
	s.names[c.meta.Name] = c.meta.ID
}

func (s *store) deleteSandbox(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sb, ok := s.sandboxes[id]; ok {
		delete(s.sandboxes, id)
		if s.names[sb.meta.Name] == id {
			delete(s.names, sb.meta.Name)
		}
	}
}

func (s *store) deleteContainer(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.containers[id]; ok {
		delete(s.containers, id)
		if s.names[c.meta.Name] == id {
			delete(s.names, c.meta.Name)
		}
	}
}

// sandbox finds a sandbox by full ID or unique ID prefix, as crictl users type them.
func (s *store) sandbox(id string) (*sandbox, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	full, err := resolveID(id, s.sandboxes)
	if err != nil {
		return nil, fmt.Errorf("sandbox %q: %w", id, err)
	}
	return s.sandboxes[full], nil
}

func (s *store) container(id string) (*container, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	full, err := resolveID(id, s.containers)
	if err != nil {
		return nil, fmt.Errorf("container %q: %w", id, err)
	}
	return s.containers[full], nil
}

func resolveID[T any](id string, m map[string]T) (string, error) {
	if id == "" {
		return "", fmt.Errorf("empty ID: %w", errdefs.ErrInvalidArgument)
	}
	if _, ok := m[id]; ok {
		return id, nil
	}
	var found string
	for full := range m {
		if strings.HasPrefix(full, id) {
			if found != "" {
				return "", fmt.Errorf("ambiguous ID prefix: %w", errdefs.ErrInvalidArgument)
			}
			found = full
		}
	}
	if found == "" {
		return "", errdefs.ErrNotFound
	}
	return found, nil
}

func (s *store) listSandboxes() []*sandbox {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*sandbox, 0, len(s.sandboxes))
	for _, sb := range s.sandboxes {
		out = append(out, sb)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].meta.CreatedAt < out[j].meta.CreatedAt })
	return out
}

func (s *store) listContainers() []*container {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*container, 0, len(s.containers))
	for _, c := range s.containers {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].meta.CreatedAt < out[j].meta.CreatedAt })
	return out
}

// containersOf returns the containers of one sandbox.
func (s *store) containersOf(sandboxID string) []*container {
	var out []*container
	for _, c := range s.listContainers() {
		if c.meta.SandboxID == sandboxID {
			out = append(out, c)
		}
	}
	return out
}

func nowNano() int64 { return time.Now().UnixNano() }
