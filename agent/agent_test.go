package agent

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/flowcontrol"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"
	"k8s.io/klog/v2/ktesting"
)

const testNode = "node-1"

// testEnv is an agent wired to cri-api's fake runtime and client-go's fake clientset.
type testEnv struct {
	t        *testing.T
	agent    *Agent
	client   *fake.Clientset
	runtime  *critest.FakeRuntimeService
	images   *critest.FakeImageService
	recorder *record.FakeRecorder
	cancel   context.CancelFunc
	done     chan struct{}
}

func readyRuntimeStatus() *runtimeapi.RuntimeStatus {
	return &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
		{Type: runtimeapi.RuntimeReady, Status: true},
		{Type: runtimeapi.NetworkReady, Status: true},
	}}
}

// newTestEnv builds an agent; rt may carry state from an earlier agent (a restart).
func newTestEnv(t *testing.T, rt *critest.FakeRuntimeService, objs ...runtime.Object) *testEnv {
	t.Helper()
	if rt == nil {
		rt = critest.NewFakeRuntimeService()
		rt.FakeStatus = readyRuntimeStatus()
	}
	dir := t.TempDir()
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 10.0.0.2\nsearch example.org\noptions ndots:2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := &testEnv{
		t:        t,
		client:   fake.NewClientset(objs...),
		runtime:  rt,
		images:   critest.NewFakeImageService(),
		recorder: record.NewFakeRecorder(1000),
	}
	// The fake clientset does not assign UIDs; the apiserver does.
	env.client.PrependReactor("create", "*", func(act clienttesting.Action) (bool, runtime.Object, error) {
		if obj, err := meta.Accessor(act.(clienttesting.CreateAction).GetObject()); err == nil && obj.GetUID() == "" {
			obj.SetUID(uuid.NewUUID())
		}
		return false, nil, nil
	})
	a, err := New(Config{
		NodeName:             testNode,
		Client:               env.client,
		Runtime:              rt,
		Images:               env.images,
		PodCIDR:              "10.244.1.0/24",
		NodeIP:               "10.0.0.5",
		RootDir:              filepath.Join(dir, "root"),
		ResolvConf:           resolv,
		LeaseDurationSeconds: 1,
		KubeletPort:          freePort(t),
		// A cgroup root of its own: teardown rmdirs pod cgroups on the real host.
		CgroupRoot:                "/skiff-agent-test-" + string(uuid.NewUUID()),
		NodeStatusUpdateFrequency: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	// Events go to a FakeRecorder the test reads; back-offs are shortened.
	a.recorder, a.broadcaster = env.recorder, nil
	a.puller.recorder = env.recorder
	a.prober.recorder = env.recorder
	a.crashBackoff = flowcontrol.NewBackOff(300*time.Millisecond, time.Second)
	a.puller.backoff = flowcontrol.NewBackOff(300*time.Millisecond, time.Second)
	a.pleg.period = 50 * time.Millisecond
	env.agent = a
	return env
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (e *testEnv) start() {
	_, ctx := ktesting.NewTestContext(e.t)
	ctx, e.cancel = context.WithCancel(ctx)
	e.done = make(chan struct{})
	go func() {
		defer close(e.done)
		if err := e.agent.Run(ctx); err != nil {
			e.t.Errorf("Run: %v", err)
		}
	}()
	e.t.Cleanup(e.stop)
}

func (e *testEnv) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	select {
	case <-e.done:
	case <-time.After(10 * time.Second):
		e.t.Error("agent did not stop")
	}
	e.cancel = nil
}

// eventually polls cond until it holds or 10s pass.
func (e *testEnv) eventually(what string, cond func() bool) {
	e.t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		e.t.Fatalf("timed out waiting for %s", what)
	}
}

func (e *testEnv) getPod(name string) *v1.Pod {
	e.t.Helper()
	p, err := e.client.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatalf("get pod %s: %v", name, err)
	}
	return p
}

// events collects what the recorder got so far (and keeps it for later calls).
type eventLog struct {
	mu   sync.Mutex
	seen []string
}

func (e *testEnv) drainEvents(log *eventLog) []string {
	log.mu.Lock()
	defer log.mu.Unlock()
	for {
		select {
		case ev := <-e.recorder.Events:
			log.seen = append(log.seen, ev)
		default:
			return append([]string(nil), log.seen...)
		}
	}
}

func testPod(name string, uid types.UID, mutate ...func(*v1.Pod)) *v1.Pod {
	grace := int64(30)
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: uid, Labels: map[string]string{"app": "web"}},
		Spec: v1.PodSpec{
			NodeName:                      testNode,
			RestartPolicy:                 v1.RestartPolicyAlways,
			DNSPolicy:                     v1.DNSClusterFirst,
			TerminationGracePeriodSeconds: &grace,
			Containers: []v1.Container{{
				Name:                     "nginx",
				Image:                    "nginx",
				ImagePullPolicy:          v1.PullIfNotPresent,
				TerminationMessagePath:   "/dev/termination-log",
				TerminationMessagePolicy: v1.TerminationMessageReadFile,
				Ports:                    []v1.ContainerPort{{ContainerPort: 80, HostPort: 8080, Protocol: v1.ProtocolTCP}},
				Env:                      []v1.EnvVar{{Name: "POD_NAME", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
			}},
		},
		Status: v1.PodStatus{
			Phase:      v1.PodPending,
			Conditions: []v1.PodCondition{{Type: v1.PodScheduled, Status: v1.ConditionTrue}},
		},
	}
	for _, m := range mutate {
		m(pod)
	}
	return pod
}

// setContainerExited makes the fake runtime report a container as exited.
func setContainerExited(rt *critest.FakeRuntimeService, id string, code int32) {
	rt.Lock()
	defer rt.Unlock()
	c := rt.Containers[id]
	c.State = runtimeapi.ContainerState_CONTAINER_EXITED
	c.ExitCode = code
	c.FinishedAt = time.Now().UnixNano()
}

func containerIDs(rt *critest.FakeRuntimeService) map[string]runtimeapi.ContainerState {
	rt.Lock()
	defer rt.Unlock()
	out := map[string]runtimeapi.ContainerState{}
	for id, c := range rt.Containers {
		out[id] = c.State
	}
	return out
}

func countCalls(calls []string, name string) int {
	n := 0
	for _, c := range calls {
		if c == name {
			n++
		}
	}
	return n
}
