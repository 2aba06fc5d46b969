package agent

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// Defaults of LogRotation; they are the kubelet's.
const (
	DefaultContainerLogMaxSize         = 10 << 20 // containerLogMaxSize 10Mi
	DefaultContainerLogMaxFiles        = 5
	DefaultContainerLogMonitorInterval = 10 * time.Second
	DefaultContainerLogMaxWorkers      = 1
)

const (
	// rotatedLogTimeFormat stamps a rotated log: <log>.<UTC time>. Fixed width, so the
	// names sort oldest first.
	rotatedLogTimeFormat = "20060102-150405"
	gzipSuffix           = ".gz"
	// tmpSuffix marks a compression in progress; one found later is the leftover of a crash.
	tmpSuffix = ".tmp"
)

// LogRotation is how container logs are rotated (kubelet's --container-log-max-size,
// --container-log-max-files, --container-log-monitor-interval, --container-log-max-workers).
type LogRotation struct {
	// MaxSize in bytes: a running container's log at least this large is rotated.
	// Default DefaultContainerLogMaxSize.
	MaxSize int64
	// MaxFiles counts the current log and the rotated ones kept beside it; at least 2.
	// Default DefaultContainerLogMaxFiles.
	MaxFiles int
	// MonitorInterval is how often log sizes are checked. Default 10s.
	MonitorInterval time.Duration
	// Workers is how many containers are rotated at once. Default 1.
	Workers int
}

// validate rejects impossible values and fills in the defaults.
func (r *LogRotation) validate() error {
	var errs []error
	if r.MaxSize < 0 {
		errs = append(errs, fmt.Errorf("LogRotation.MaxSize %d must not be negative", r.MaxSize))
	}
	if r.MaxFiles < 0 || r.MaxFiles == 1 {
		errs = append(errs, fmt.Errorf("LogRotation.MaxFiles %d must be at least 2", r.MaxFiles))
	}
	if r.MonitorInterval < 0 {
		errs = append(errs, fmt.Errorf("LogRotation.MonitorInterval %v must not be negative", r.MonitorInterval))
	}
	if r.Workers < 0 {
		errs = append(errs, fmt.Errorf("LogRotation.Workers %d must not be negative", r.Workers))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	r.applyDefaults()
	return nil
}

func (r *LogRotation) applyDefaults() {
	if r.MaxSize == 0 {
		r.MaxSize = DefaultContainerLogMaxSize
	}
	if r.MaxFiles == 0 {
		r.MaxFiles = DefaultContainerLogMaxFiles
	}
	if r.MonitorInterval == 0 {
		r.MonitorInterval = DefaultContainerLogMonitorInterval
	}
	if r.Workers == 0 {
		r.Workers = DefaultContainerLogMaxWorkers
	}
}

// containerLogManager rotates the logs of this node's running containers, as kubelet's
// container log manager does: the runtime keeps writing to the renamed file until
// ReopenContainerLog makes it start a new one at the original path.
type containerLogManager struct {
	policy     LogRotation
	runtime    internalapi.RuntimeService
	node       string
	podLogsDir string
	clock      clock.PassiveClock
}

func (a *Agent) runContainerLogManager(ctx context.Context) {
	m := &containerLogManager{
		policy:     a.cfg.LogRotation,
		runtime:    a.cfg.Runtime,
		node:       a.cfg.NodeName,
		podLogsDir: a.cfg.PodLogsDir,
		clock:      clock.RealClock{},
	}
	m.run(ctx)
}

func (m *containerLogManager) run(ctx context.Context) {
	ctx = klog.NewContext(ctx, klog.FromContext(ctx).WithName("container-log-manager"))
	wait.UntilWithContext(ctx, m.rotateLogs, m.policy.MonitorInterval)
}

// rotateLogs checks every running container of this node once, Workers at a time.
func (m *containerLogManager) rotateLogs(ctx context.Context) {
	logger := klog.FromContext(ctx)
	list, err := m.runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{
		State:         &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
		LabelSelector: map[string]string{labelNode: m.node},
	})
	if err != nil {
		logger.Error(err, "Listing running containers for log rotation")
		return
	}
	statuses, err := containerStatuses(ctx, m.runtime, list)
	if err != nil {
		logger.Error(err, "Reading container statuses for log rotation")
		return
	}
	work := make(chan *runtimeapi.ContainerStatus)
	var wg sync.WaitGroup
	for range min(m.policy.Workers, len(statuses)) {
		wg.Go(func() {
			for st := range work {
				if err := m.rotateIfNeeded(ctx, st); err != nil {
					logger.Error(err, "Rotating container log", "containerID", st.Id)
				}
			}
		})
	}
	for _, st := range statuses {
		work <- st
	}
	close(work)
	wg.Wait()
}

// rotateIfNeeded rotates one container's log when it reached MaxSize.
func (m *containerLogManager) rotateIfNeeded(ctx context.Context, st *runtimeapi.ContainerStatus) error {
	path := m.logPath(st)
	if path == "" || st.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return nil // the runtime keeps no log for it, or it stopped since the list
	}
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		// A rotation cut short between the rename and the reopen (an agent crash) left the
		// runtime writing to the rotated file: have it start the current one again.
		if err := m.runtime.ReopenContainerLog(ctx, st.Id); err != nil {
			return fmt.Errorf("reopen missing log %s: %w", path, err)
		}
		info, err = os.Stat(path)
	}
	if err != nil {
		return fmt.Errorf("stat container log: %w", err)
	}
	if info.Size() < m.policy.MaxSize {
		return nil
	}
	return m.rotate(ctx, st.Id, path)
}

// logPath is where the runtime writes the container's log, "" when it keeps none.
func (m *containerLogManager) logPath(st *runtimeapi.ContainerStatus) string {
	p := st.GetLogPath()
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	// Runtimes report it absolute; one that echoes the config's relative path gets the
	// pod log directory the agent gave the sandbox, rebuilt from the labels.
	l := st.GetLabels()
	return filepath.Join(m.podLogsDir, l[labelPodNamespace]+"_"+l[labelPodName]+"_"+l[labelPodUID], p)
}

// rotate makes room for one more rotated file, then renames the log aside and has the
// runtime reopen it.
func (m *containerLogManager) rotate(ctx context.Context, id, path string) error {
	rotated, err := cleanRotatedLogs(path)
	if err != nil {
		return err
	}
	// The current log becomes one more rotated file: keep MaxFiles-2 of the older ones.
	keep := m.policy.MaxFiles - 2
	for len(rotated) > keep {
		if err := os.Remove(rotated[0]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove old log: %w", err)
		}
		rotated = rotated[1:]
	}
	// The newest rotated file stays plain until the next rotation: a follower may still be
	// draining it, and kubelet leaves it so too.
	for _, r := range rotated {
		if !strings.HasSuffix(r, gzipSuffix) {
			if err := compressLog(r); err != nil {
				return err
			}
		}
	}
	name := path + "." + m.clock.Now().UTC().Format(rotatedLogTimeFormat)
	if pathExists(name) || pathExists(name+gzipSuffix) {
		// Rotated once already this second: renaming would overwrite that file.
		klog.FromContext(ctx).V(2).Info("Log rotated within the last second, retrying later", "path", path)
		return nil
	}
	if err := os.Rename(path, name); err != nil {
		return fmt.Errorf("rotate log: %w", err)
	}
	if err := m.runtime.ReopenContainerLog(ctx, id); err != nil {
		// The runtime may still write to the renamed file: put it back so no line is lost,
		// and try again next round.
		if rerr := os.Rename(name, path); rerr != nil {
			return fmt.Errorf("reopen log of %s: %w (and renaming %s back failed: %w)", id, err, name, rerr)
		}
		return fmt.Errorf("reopen log of %s: %w", id, err)
	}
	klog.FromContext(ctx).V(2).Info("Rotated container log", "containerID", id, "rotated", name)
	return nil
}

// cleanRotatedLogs removes what a crashed rotation left of path's rotated files and
// returns the rest, oldest first.
func cleanRotatedLogs(path string) ([]string, error) {
	dir, base := filepath.Split(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list rotated logs: %w", err)
	}
	present := make(map[string]bool, len(entries))
	for _, e := range entries {
		present[e.Name()] = true
	}
	var rotated []string
	for _, e := range entries {
		name := e.Name()
		kind, ok := rotatedSuffix(name, base)
		if !ok {
			continue
		}
		// A .tmp is a compression cut short (its source is still there); a plain file
		// whose .gz exists was compressed whole but not yet removed.
		if kind == tmpSuffix || (kind == "" && present[name+gzipSuffix]) {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("remove leftover of a rotation: %w", err)
			}
			continue
		}
		rotated = append(rotated, filepath.Join(dir, name))
	}
	sort.Strings(rotated)
	return rotated, nil
}

// rotatedSuffix tells whether name is a rotated file of the log named base, and which:
// "" (plain), gzipSuffix or tmpSuffix. Other files in the directory are left alone.
func rotatedSuffix(name, base string) (string, bool) {
	rest, ok := strings.CutPrefix(name, base+".")
	if !ok {
		return "", false
	}
	kind := ""
	for _, s := range []string{tmpSuffix, gzipSuffix} {
		if r, ok := strings.CutSuffix(rest, s); ok {
			rest, kind = r, s
			break
		}
	}
	if _, err := time.Parse(rotatedLogTimeFormat, rest); err != nil {
		return "", false
	}
	return kind, true
}

// compressLog replaces name by name.gz. The gzip is written to a .tmp first and renamed
// into place whole, so a crash never leaves a truncated .gz.
func compressLog(name string) error {
	in, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("compress log: %w", err)
	}
	defer in.Close()
	info, err := in.Stat()
	if err != nil {
		return fmt.Errorf("compress log: %w", err)
	}
	tmp := name + tmpSuffix
	if err := writeGzip(tmp, in, info.Mode().Perm()); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("compress log %s: %w", name, err)
	}
	if err := os.Rename(tmp, name+gzipSuffix); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("compress log: %w", err)
	}
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("remove compressed log: %w", err)
	}
	return nil
}

func writeGzip(path string, r io.Reader, perm fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(f)
	_, err = io.Copy(zw, r)
	return errors.Join(err, zw.Close(), f.Close())
}

func pathExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
