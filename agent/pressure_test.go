package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2/ktesting"
)

// fakeSignals feeds the pressure conditions fixed values; a filesystem not in fs fails.
type fakeSignals struct {
	memAvail, memCap int64
	pidAvail, pidMax int64
	fs               map[string]FsStats
	memErr           error
}

func (f *fakeSignals) Memory() (int64, int64, error) { return f.memAvail, f.memCap, f.memErr }
func (f *fakeSignals) PIDs() (int64, int64, error)   { return f.pidAvail, f.pidMax, nil }
func (f *fakeSignals) Filesystem(path string) (FsStats, error) {
	if st, ok := f.fs[path]; ok {
		return st, nil
	}
	return FsStats{}, errors.New("no such filesystem")
}

const gi = int64(1) << 30

// healthySignals is a node far from every threshold; nodefs lives at root.
func healthySignals(root string) *fakeSignals {
	return &fakeSignals{
		memAvail: 8 * gi, memCap: 16 * gi,
		pidAvail: 30000, pidMax: 32768,
		fs: map[string]FsStats{root: {AvailableBytes: 50 * gi, CapacityBytes: 100 * gi, InodesFree: 900, Inodes: 1000}},
	}
}

// pressureEnv is an agent whose pressure signals come from sig.
func pressureEnv(t *testing.T, sig *fakeSignals, period time.Duration) *testEnv {
	t.Helper()
	env := newTestEnv(t, nil)
	env.agent.cfg.Pressure.Signals = sig
	env.agent.pressure = newPressureTracker(period)
	return env
}

func conditionOf(conds []v1.NodeCondition, t v1.NodeConditionType) v1.NodeCondition {
	for _, c := range conds {
		if c.Type == t {
			return c
		}
	}
	return v1.NodeCondition{}
}

func TestPressureConditionsFromSignals(t *testing.T) {
	for _, tc := range []struct {
		name      string
		mutate    func(s *fakeSignals, root string)
		cond      v1.NodeConditionType
		reason    string
		inMessage []string
	}{
		{"healthy memory", nil, v1.NodeMemoryPressure, "KubeletHasSufficientMemory", []string{"kubelet has sufficient memory available"}},
		{"healthy disk", nil, v1.NodeDiskPressure, "KubeletHasNoDiskPressure", []string{"kubelet has no disk pressure"}},
		{"healthy pids", nil, v1.NodePIDPressure, "KubeletHasSufficientPID", []string{"kubelet has sufficient PID available"}},
		{"memory below 100Mi", func(s *fakeSignals, _ string) { s.memAvail = 80 << 20 },
			v1.NodeMemoryPressure, "KubeletHasInsufficientMemory", []string{"memory.available 80Mi is below the threshold 100Mi"}},
		{"unreadable memory is no pressure", func(s *fakeSignals, _ string) { s.memAvail, s.memErr = 0, errors.New("no meminfo") },
			v1.NodeMemoryPressure, "KubeletHasSufficientMemory", nil},
		{"nodefs below 10%", func(s *fakeSignals, root string) {
			s.fs[root] = FsStats{AvailableBytes: 9 * gi, CapacityBytes: 100 * gi, InodesFree: 900, Inodes: 1000}
		}, v1.NodeDiskPressure, "KubeletHasDiskPressure", []string{"nodefs.available 9.0Gi is below the threshold 10% of 100.0Gi (10.0Gi)"}},
		{"nodefs inodes below 5%", func(s *fakeSignals, root string) {
			s.fs[root] = FsStats{AvailableBytes: 50 * gi, CapacityBytes: 100 * gi, InodesFree: 40, Inodes: 1000}
		}, v1.NodeDiskPressure, "KubeletHasDiskPressure", []string{"nodefs.inodesFree 40 is below the threshold 5% of 1000 (50)"}},
		{"no imagefs: imagefs thresholds apply to nodefs", func(s *fakeSignals, root string) {
			s.fs[root] = FsStats{AvailableBytes: 12 * gi, CapacityBytes: 100 * gi}
		}, v1.NodeDiskPressure, "KubeletHasDiskPressure", []string{"imagefs.available 12.0Gi is below the threshold 15% of 100.0Gi (15.0Gi)"}},
		{"pids below 10%", func(s *fakeSignals, _ string) { s.pidAvail = 3000 },
			v1.NodePIDPressure, "KubeletHasInsufficientPID", []string{"pid.available 3000 is below the threshold 10% of 32768 (3276)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := pressureEnv(t, nil, time.Minute)
			root := env.agent.cfg.RootDir
			sig := healthySignals(root)
			if tc.mutate != nil {
				tc.mutate(sig, root)
			}
			env.agent.cfg.Pressure.Signals = sig
			conds := env.agent.pressureConditions(context.Background())
			if len(conds) != 3 {
				t.Fatalf("%d conditions, want 3", len(conds))
			}
			c := conditionOf(conds, tc.cond)
			wantStatus := v1.ConditionFalse
			if strings.HasPrefix(tc.reason, "KubeletHasInsufficient") || tc.reason == "KubeletHasDiskPressure" {
				wantStatus = v1.ConditionTrue
			}
			if c.Status != wantStatus || c.Reason != tc.reason {
				t.Errorf("%s = %s/%s (%q), want %s/%s", tc.cond, c.Status, c.Reason, c.Message, wantStatus, tc.reason)
			}
			for _, want := range tc.inMessage {
				if !strings.Contains(c.Message, want) {
					t.Errorf("message %q does not contain %q", c.Message, want)
				}
			}
		})
	}
}

// The runtime's image filesystem (CRI ImageFsInfo) is judged apart from nodefs.
func TestPressureImageFsFromRuntime(t *testing.T) {
	env := pressureEnv(t, nil, time.Minute)
	root := env.agent.cfg.RootDir
	sig := healthySignals(root)
	sig.fs["/images"] = FsStats{AvailableBytes: 1 * gi, CapacityBytes: 100 * gi, InodesFree: 10, Inodes: 1000}
	env.agent.cfg.Pressure.Signals = sig
	env.images.FakeFilesystemUsage = []*runtimeapi.FilesystemUsage{{FsId: &runtimeapi.FilesystemIdentifier{Mountpoint: "/images"}}}
	c := conditionOf(env.agent.pressureConditions(context.Background()), v1.NodeDiskPressure)
	want := "imagefs.available 1.0Gi is below the threshold 15% of 100.0Gi (15.0Gi); imagefs.inodesFree 10 is below the threshold 5% of 1000 (50)"
	if c.Status != v1.ConditionTrue || c.Message != want {
		t.Errorf("DiskPressure %s %q, want True %q", c.Status, c.Message, want)
	}
	// An image filesystem that cannot be read falls back to nodefs, which is healthy.
	env.images.FakeFilesystemUsage[0].FsId.Mountpoint = "/gone"
	if c := conditionOf(env.agent.pressureConditions(context.Background()), v1.NodeDiskPressure); c.Status != v1.ConditionTrue ||
		!strings.Contains(c.Message, "recovered") {
		t.Errorf("DiskPressure after recovery %s %q, want held True", c.Status, c.Message)
	}
}

// A condition stays True for the transition period after its signal recovers, and its
// transition time moves only when its status flips.
func TestPressureTransitionPeriod(t *testing.T) {
	tr := newPressureTracker(5 * time.Minute)
	low := []observation{{signal: signalMemoryAvailable, available: 50 << 20, capacity: 16 * gi, minimum: 100 << 20, bytes: true}}
	ok := []observation{{signal: signalMemoryAvailable, available: 8 * gi, capacity: 16 * gi, minimum: 100 << 20, bytes: true}}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ready := v1.NodeCondition{Type: v1.NodeReady, Status: v1.ConditionTrue}

	var prev []v1.NodeCondition
	step := func(at time.Time, obs []observation) v1.NodeCondition {
		t.Helper()
		prev = nodeConditions(prev, tr.conditions(at, obs), ready)
		return conditionOf(prev, v1.NodeMemoryPressure)
	}
	first := step(t0, ok)
	if first.Status != v1.ConditionFalse {
		t.Fatalf("healthy: %+v", first)
	}
	under := step(t0, low)
	if under.Status != v1.ConditionTrue || under.Reason != "KubeletHasInsufficientMemory" ||
		!under.LastTransitionTime.After(first.LastTransitionTime.Time) {
		t.Fatalf("under pressure: %+v", under)
	}
	for _, at := range []time.Duration{time.Minute, 5*time.Minute - time.Second} {
		held := step(t0.Add(at), ok)
		want := "memory.available recovered; MemoryPressure stays True for the 5m0s transition period after the last pressure at 2026-01-02T03:04:05Z"
		if held.Status != v1.ConditionTrue || held.Message != want || !held.LastTransitionTime.Equal(&under.LastTransitionTime) {
			t.Errorf("%v after recovery: %+v, want True %q with the transition time kept", at, held, want)
		}
	}
	if after := step(t0.Add(5*time.Minute), ok); after.Status != v1.ConditionFalse || after.Reason != "KubeletHasSufficientMemory" {
		t.Errorf("after the transition period: %+v", after)
	}
}

func TestPressureOnNodeStatus(t *testing.T) {
	env := pressureEnv(t, nil, time.Minute)
	sig := healthySignals(env.agent.cfg.RootDir)
	sig.pidAvail = 100
	env.agent.cfg.Pressure.Signals = sig
	ctx := context.Background()
	if err := env.agent.registerNode(ctx); err != nil {
		t.Fatal(err)
	}
	node, err := env.client.CoreV1().Nodes().Get(ctx, testNode, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c := conditionOf(node.Status.Conditions, v1.NodePIDPressure); c.Status != v1.ConditionTrue || c.Reason != "KubeletHasInsufficientPID" {
		t.Errorf("PIDPressure %+v", c)
	}
	if c := conditionOf(node.Status.Conditions, v1.NodeMemoryPressure); c.Status != v1.ConditionFalse {
		t.Errorf("MemoryPressure %+v", c)
	}
}

func TestPressureConfigDefaults(t *testing.T) {
	var p PressureConfig
	p.setDefaults()
	if p.MemoryAvailableMin != 100<<20 || p.NodeFsAvailablePercent != 10 || p.NodeFsInodesFreePercent != 5 ||
		p.ImageFsAvailablePercent != 15 || p.ImageFsInodesFreePercent != 5 || p.PIDAvailablePercent != 10 ||
		p.TransitionPeriod != 5*time.Minute || p.Signals == nil {
		t.Errorf("defaults %+v", p)
	}
	if err := (&PressureConfig{NodeFsAvailablePercent: 101}).validate(); err == nil {
		t.Error("a threshold above 100% accepted")
	}
	if err := (&PressureConfig{TransitionPeriod: -time.Second}).validate(); err == nil {
		t.Error("a negative transition period accepted")
	}

	// A negative threshold turns its signal off.
	env := pressureEnv(t, nil, time.Minute)
	sig := healthySignals(env.agent.cfg.RootDir)
	sig.memAvail = 1 << 20
	env.agent.cfg.Pressure.Signals = sig
	env.agent.cfg.Pressure.MemoryAvailableMin = -1
	_, ctx := ktesting.NewTestContext(t)
	if c := conditionOf(env.agent.pressureConditions(ctx), v1.NodeMemoryPressure); c.Status != v1.ConditionFalse {
		t.Errorf("MemoryPressure with the signal off: %+v", c)
	}
}

// hostSignals parses a proc tree; here a fake one.
func TestHostSignalsParse(t *testing.T) {
	proc := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		path := filepath.Join(proc, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("meminfo", "MemTotal:       16384000 kB\nMemFree:         1000 kB\nMemAvailable:    2048000 kB\n")
	write("sys/kernel/pid_max", "32768\n")
	write("sys/kernel/threads-max", "20000\n")
	write("loadavg", "0.47 0.83 1.33 3/500 25699\n")
	h := hostSignals{proc: proc}

	avail, capacity, err := h.Memory()
	if err != nil || avail != 2048000*1024 || capacity != 16384000*1024 {
		t.Errorf("Memory() = %d, %d, %v", avail, capacity, err)
	}
	free, limit, err := h.PIDs()
	if err != nil || limit != 20000 || free != 19500 {
		t.Errorf("PIDs() = %d, %d, %v; want 19500 of threads-max 20000", free, limit, err)
	}
	// Without loadavg, the processes in proc are counted.
	if err := os.Remove(filepath.Join(proc, "loadavg")); err != nil {
		t.Fatal(err)
	}
	write("1/stat", "")
	write("42/stat", "")
	if free, _, err := h.PIDs(); err != nil || free != 19998 {
		t.Errorf("PIDs() from proc dirs = %d, %v, want 19998", free, err)
	}
	write("meminfo", "MemTotal: 1 kB\n")
	if _, _, err := h.Memory(); err == nil {
		t.Error("meminfo without MemAvailable accepted")
	}
	st, err := h.Filesystem(filepath.Join(proc, "not", "made", "yet"))
	if err != nil || st.CapacityBytes <= 0 || st.AvailableBytes > st.CapacityBytes {
		t.Errorf("Filesystem() = %+v, %v", st, err)
	}
}
