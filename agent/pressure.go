package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
)

// The signals, named as kubelet's eviction manager names them.
const (
	signalMemoryAvailable   = "memory.available"
	signalNodeFsAvailable   = "nodefs.available"
	signalNodeFsInodesFree  = "nodefs.inodesFree"
	signalImageFsAvailable  = "imagefs.available"
	signalImageFsInodesFree = "imagefs.inodesFree"
	signalPIDAvailable      = "pid.available"
)

// Defaults of PressureConfig: kubelet's hard eviction defaults on Linux, its
// evictionPressureTransitionPeriod, and a pid threshold of our own (kubelet has none).
const (
	DefaultMemoryAvailableMin       = 100 << 20 // memory.available<100Mi
	DefaultNodeFsAvailablePercent   = 10        // nodefs.available<10%
	DefaultNodeFsInodesFreePercent  = 5         // nodefs.inodesFree<5%
	DefaultImageFsAvailablePercent  = 15        // imagefs.available<15%
	DefaultImageFsInodesFreePercent = 5         // imagefs.inodesFree<5%
	// DefaultPIDAvailablePercent: kubelet sets no pid.available threshold, so PIDPressure
	// never shows on a default kubelet. 10% of the task limit is kept free for the node's
	// own daemons (agent, runtime, sshd) to fork; a fixed count would mean nothing across
	// limits from 32768 to 4194304.
	DefaultPIDAvailablePercent      = 10
	DefaultPressureTransitionPeriod = 5 * time.Minute
)

// PressureConfig sets when the node reports MemoryPressure, DiskPressure and PIDPressure.
// A zero threshold takes its default; a negative one turns that signal off. Only the
// conditions are reported: no pod is evicted.
type PressureConfig struct {
	// MemoryAvailableMin in bytes: memory.available below it is MemoryPressure.
	MemoryAvailableMin int64
	// Percentages of capacity below which the signal is pressure (DiskPressure for the
	// filesystems, PIDPressure for pids).
	NodeFsAvailablePercent   float64
	NodeFsInodesFreePercent  float64
	ImageFsAvailablePercent  float64
	ImageFsInodesFreePercent float64
	PIDAvailablePercent      float64
	// TransitionPeriod keeps a condition True this long after its signals recovered, so it
	// does not flap (kubelet's evictionPressureTransitionPeriod).
	TransitionPeriod time.Duration
	// Signals reads the node's signals. Default: /proc and statfs of the host.
	Signals PressureSignals
}

// PressureSignals reads the signals the pressure conditions are computed from.
type PressureSignals interface {
	// Memory returns available and total memory in bytes.
	Memory() (available, capacity int64, err error)
	// Filesystem returns the usage of the filesystem holding path.
	Filesystem(path string) (FsStats, error)
	// PIDs returns how many more tasks the kernel allows, and its task limit.
	PIDs() (available, limit int64, err error)
}

// FsStats is what statfs tells of a filesystem. Inodes is 0 when the filesystem does
// not count them (btrfs), which turns the inode signal off.
type FsStats struct {
	AvailableBytes, CapacityBytes int64
	InodesFree, Inodes            int64
}

func (p *PressureConfig) validate() error {
	var errs []error
	for _, pct := range []struct {
		name string
		v    float64
	}{
		{"NodeFsAvailablePercent", p.NodeFsAvailablePercent}, {"NodeFsInodesFreePercent", p.NodeFsInodesFreePercent},
		{"ImageFsAvailablePercent", p.ImageFsAvailablePercent}, {"ImageFsInodesFreePercent", p.ImageFsInodesFreePercent},
		{"PIDAvailablePercent", p.PIDAvailablePercent},
	} {
		if pct.v > 100 {
			errs = append(errs, fmt.Errorf("Pressure.%s %v must not exceed 100", pct.name, pct.v))
		}
	}
	if p.TransitionPeriod < 0 {
		errs = append(errs, fmt.Errorf("Pressure.TransitionPeriod %v must not be negative", p.TransitionPeriod))
	}
	return errors.Join(errs...)
}

func (p *PressureConfig) setDefaults() {
	orDefault := func(v *float64, def float64) {
		if *v == 0 {
			*v = def
		}
	}
	if p.MemoryAvailableMin == 0 {
		p.MemoryAvailableMin = DefaultMemoryAvailableMin
	}
	orDefault(&p.NodeFsAvailablePercent, DefaultNodeFsAvailablePercent)
	orDefault(&p.NodeFsInodesFreePercent, DefaultNodeFsInodesFreePercent)
	orDefault(&p.ImageFsAvailablePercent, DefaultImageFsAvailablePercent)
	orDefault(&p.ImageFsInodesFreePercent, DefaultImageFsInodesFreePercent)
	orDefault(&p.PIDAvailablePercent, DefaultPIDAvailablePercent)
	if p.TransitionPeriod == 0 {
		p.TransitionPeriod = DefaultPressureTransitionPeriod
	}
	if p.Signals == nil {
		p.Signals = hostSignals{proc: "/proc"}
	}
}

// observation is one reading of a signal against its threshold.
type observation struct {
	signal              string
	available, capacity int64
	// minimum is an absolute threshold; percent (of capacity) is used when it is 0.
	minimum int64
	percent float64
	bytes   bool // format the values as sizes rather than counts
}

func (o observation) limit() int64 {
	if o.minimum > 0 {
		return o.minimum
	}
	return int64(float64(o.capacity) * o.percent / 100)
}

func (o observation) breached() bool {
	return (o.minimum > 0 || o.percent > 0) && o.available < o.limit()
}

func (o observation) format(v int64) string {
	if o.bytes {
		return formatBytes(v)
	}
	return strconv.FormatInt(v, 10)
}

func (o observation) thresholdText() string {
	if o.minimum > 0 {
		return o.format(o.minimum)
	}
	return fmt.Sprintf("%g%% of %s (%s)", o.percent, o.format(o.capacity), o.format(o.limit()))
}

// message names the signal, what was seen and the threshold.
func (o observation) message() string {
	return fmt.Sprintf("%s %s is below the threshold %s", o.signal, o.format(o.available), o.thresholdText())
}

func formatBytes(v int64) string {
	switch {
	case v >= 1<<30:
		return fmt.Sprintf("%.1fGi", float64(v)/(1<<30))
	case v >= 1<<20:
		return fmt.Sprintf("%dMi", v>>20)
	}
	return fmt.Sprintf("%dKi", v>>10)
}

// pressureKind is one of the three conditions: its reasons and default message are
// kubelet's.
type pressureKind struct {
	cond                         v1.NodeConditionType
	reasonTrue, reasonFalse, msg string
}

func pressureKinds() [3]pressureKind {
	return [3]pressureKind{
		{v1.NodeMemoryPressure, "KubeletHasInsufficientMemory", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"},
		{v1.NodeDiskPressure, "KubeletHasDiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"},
		{v1.NodePIDPressure, "KubeletHasInsufficientPID", "KubeletHasSufficientPID", "kubelet has sufficient PID available"},
	}
}

func conditionOfSignal(signal string) v1.NodeConditionType {
	switch signal {
	case signalMemoryAvailable:
		return v1.NodeMemoryPressure
	case signalPIDAvailable:
		return v1.NodePIDPressure
	}
	return v1.NodeDiskPressure
}

// pressureTracker turns observations into conditions, holding a condition True for the
// transition period after its last breach (kubelet's nodeConditionsObservedSince).
type pressureTracker struct {
	period time.Duration

	mu sync.Mutex
	// lastBreach is when each condition last had a signal below its threshold, and
	// lastSignals which signals those were.
	lastBreach  map[v1.NodeConditionType]time.Time
	lastSignals map[v1.NodeConditionType]string
}

func newPressureTracker(period time.Duration) *pressureTracker {
	return &pressureTracker{
		period:      period,
		lastBreach:  map[v1.NodeConditionType]time.Time{},
		lastSignals: map[v1.NodeConditionType]string{},
	}
}

// conditions returns the three pressure conditions (without times) for what was observed at now.
func (t *pressureTracker) conditions(now time.Time, obs []observation) []v1.NodeCondition {
	breaches := map[v1.NodeConditionType][]observation{}
	for _, o := range obs {
		if o.breached() {
			c := conditionOfSignal(o.signal)
			breaches[c] = append(breaches[c], o)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	kinds := pressureKinds()
	out := make([]v1.NodeCondition, 0, len(kinds))
	for _, k := range kinds {
		cond := v1.NodeCondition{Type: k.cond, Status: v1.ConditionFalse, Reason: k.reasonFalse, Message: k.msg}
		if b := breaches[k.cond]; len(b) > 0 {
			msgs, names := make([]string, len(b)), make([]string, len(b))
			for i, o := range b {
				msgs[i], names[i] = o.message(), o.signal
			}
			t.lastBreach[k.cond], t.lastSignals[k.cond] = now, strings.Join(names, ", ")
			cond.Status, cond.Reason, cond.Message = v1.ConditionTrue, k.reasonTrue, strings.Join(msgs, "; ")
		} else if last, ok := t.lastBreach[k.cond]; ok && now.Sub(last) < t.period {
			// The message names no current value, so holding does not rewrite the status.
			cond.Status, cond.Reason = v1.ConditionTrue, k.reasonTrue
			cond.Message = fmt.Sprintf("%s recovered; %s stays True for the %v transition period after the last pressure at %s",
				t.lastSignals[k.cond], k.cond, t.period, last.UTC().Format(time.RFC3339))
		}
		out = append(out, cond)
	}
	return out
}

// pressureConditions reads the signals and returns the three pressure conditions.
func (a *Agent) pressureConditions(ctx context.Context) []v1.NodeCondition {
	return a.pressure.conditions(time.Now(), a.observeSignals(ctx))
}

// observeSignals reads every signal whose threshold is on. A signal that cannot be read
// is left out, as kubelet does with a missing statistic: it cannot raise pressure.
func (a *Agent) observeSignals(ctx context.Context) []observation {
	logger := klog.FromContext(ctx)
	p := a.cfg.Pressure
	var obs []observation
	// kubelet's memory.available is capacity minus the root cgroup's working set;
	// MemAvailable is the kernel's own estimate of the same (reclaimable cache counted
	// free) and needs no cgroup accounting.
	if avail, capacity, err := p.Signals.Memory(); err != nil {
		logger.V(2).Info("Reading memory signal", "err", err)
	} else {
		obs = append(obs, observation{signal: signalMemoryAvailable, available: avail, capacity: capacity, minimum: p.MemoryAvailableMin, bytes: true})
	}
	if avail, limit, err := p.Signals.PIDs(); err != nil {
		logger.V(2).Info("Reading pid signal", "err", err)
	} else {
		obs = append(obs, observation{signal: signalPIDAvailable, available: avail, capacity: limit, percent: p.PIDAvailablePercent})
	}
	nodeFs, nodeErr := p.Signals.Filesystem(a.cfg.RootDir)
	if nodeErr != nil {
		logger.V(2).Info("Reading nodefs signals", "err", nodeErr)
	} else {
		obs = append(obs, fsObservations(nodeFs, signalNodeFsAvailable, signalNodeFsInodesFree, p.NodeFsAvailablePercent, p.NodeFsInodesFreePercent)...)
	}
	// Without an image filesystem of its own the runtime stores images on nodefs, and
	// kubelet applies the imagefs thresholds to that (hence DiskPressure at 15% free on
	// a single-disk node).
	imageFs, imageErr := nodeFs, nodeErr
	if mp := a.imageFsMountpoint(ctx); mp != "" {
		if st, err := p.Signals.Filesystem(mp); err == nil {
			imageFs, imageErr = st, nil
		} else {
			logger.V(2).Info("Reading imagefs signals, using nodefs", "mountpoint", mp, "err", err)
		}
	}
	if imageErr == nil {
		obs = append(obs, fsObservations(imageFs, signalImageFsAvailable, signalImageFsInodesFree, p.ImageFsAvailablePercent, p.ImageFsInodesFreePercent)...)
	}
	return filterOn(obs)
}

func fsObservations(st FsStats, bytesSignal, inodesSignal string, bytesPct, inodesPct float64) []observation {
	obs := []observation{{signal: bytesSignal, available: st.AvailableBytes, capacity: st.CapacityBytes, percent: bytesPct, bytes: true}}
	if st.Inodes > 0 {
		obs = append(obs, observation{signal: inodesSignal, available: st.InodesFree, capacity: st.Inodes, percent: inodesPct})
	}
	return obs
}

// filterOn drops the signals whose threshold is turned off (negative).
func filterOn(obs []observation) []observation {
	out := obs[:0]
	for _, o := range obs {
		if o.minimum >= 0 && o.percent >= 0 {
			out = append(out, o)
		}
	}
	return out
}

// imageFsMountpoint is where the runtime keeps images, from CRI ImageFsInfo; empty
// when the runtime does not say.
func (a *Agent) imageFsMountpoint(ctx context.Context) string {
	resp, err := a.cfg.Images.ImageFsInfo(ctx)
	if err != nil {
		klog.FromContext(ctx).V(2).Info("ImageFsInfo failed, imagefs is nodefs", "err", err)
		return ""
	}
	for _, fs := range resp.GetImageFilesystems() {
		if mp := fs.GetFsId().GetMountpoint(); mp != "" {
			return mp
		}
	}
	return ""
}

// hostSignals reads the signals of the host from proc (normally /proc) and statfs.
type hostSignals struct{ proc string }

func (h hostSignals) Memory() (int64, int64, error) {
	vals, err := meminfo(filepath.Join(h.proc, "meminfo"), "MemAvailable:", "MemTotal:")
	if err != nil {
		return 0, 0, err
	}
	return vals[0], vals[1], nil
}

// meminfo returns the values (in bytes) of the given keys of a meminfo file.
func meminfo(path string, keys ...string) ([]int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read meminfo: %w", err)
	}
	found := map[string]int64{}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("parse %s %q: %w", f[0], f[1], err)
		}
		found[f[0]] = kb * 1024
	}
	out := make([]int64, len(keys))
	for i, k := range keys {
		v, ok := found[k]
		if !ok {
			return nil, fmt.Errorf("no %s in %s", strings.TrimSuffix(k, ":"), path)
		}
		out[i] = v
	}
	return out, nil
}

// Filesystem statfs's path, or its nearest existing parent (a data dir not made yet
// lives on its parent's filesystem).
func (hostSignals) Filesystem(path string) (FsStats, error) {
	for {
		var st unix.Statfs_t
		err := unix.Statfs(path, &st)
		if err == nil {
			return FsStats{
				AvailableBytes: int64(st.Bavail) * st.Bsize, // what unprivileged writers get
				CapacityBytes:  int64(st.Blocks) * st.Bsize,
				InodesFree:     int64(st.Ffree),
				Inodes:         int64(st.Files),
			}, nil
		}
		parent := filepath.Dir(path)
		if !errors.Is(err, unix.ENOENT) || parent == path {
			return FsStats{}, fmt.Errorf("statfs %s: %w", path, err)
		}
		path = parent
	}
}

// PIDs is kubelet's pid.available: the task limit (the lower of pid_max and threads-max,
// both of which cap the tasks of the system) minus the tasks that exist.
func (h hostSignals) PIDs() (int64, int64, error) {
	limit := int64(-1)
	for _, name := range []string{"sys/kernel/pid_max", "sys/kernel/threads-max"} {
		data, err := os.ReadFile(filepath.Join(h.proc, name))
		if err != nil {
			continue
		}
		if v, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64); err == nil && (limit < 0 || v < limit) {
			limit = v
		}
	}
	if limit < 0 {
		return 0, 0, fmt.Errorf("no task limit in %s/sys/kernel", h.proc)
	}
	tasks, err := h.taskCount()
	if err != nil {
		return 0, 0, err
	}
	return limit - tasks, limit, nil
}

// taskCount is the total of loadavg's 4th field ("runnable/total" scheduling entities,
// threads included), else the number of processes in proc.
func (h hostSignals) taskCount() (int64, error) {
	if data, err := os.ReadFile(filepath.Join(h.proc, "loadavg")); err == nil {
		if f := strings.Fields(string(data)); len(f) >= 4 {
			if _, total, ok := strings.Cut(f[3], "/"); ok {
				if n, err := strconv.ParseInt(total, 10, 64); err == nil {
					return n, nil
				}
			}
		}
	}
	entries, err := os.ReadDir(h.proc)
	if err != nil {
		return 0, fmt.Errorf("count processes: %w", err)
	}
	var n int64
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err == nil && e.IsDir() {
			n++
		}
	}
	return n, nil
}
