package agent

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
	"k8s.io/utils/ptr"
)

// The node's half of /stats/summary, read from /proc and statfs. kubelet reads the root
// cgroup through cAdvisor; /proc gives the same numbers for the whole machine.

// procDir is where the node's counters are read; tests parse fixtures with the same readers.
const procDir = "/proc"

// userHZ is the unit of /proc/stat's CPU times. The kernel exports them in USER_HZ,
// which is 100 on every Linux architecture skiff runs on.
const userHZ = 100

// nodeCPUUsage is the CPU time the machine spent not idle, in core-nanoseconds, from the
// aggregate "cpu" line of /proc/stat (user nice system idle iowait irq softirq steal ...).
// guest time is already part of user.
func nodeCPUUsage(statFile string) (uint64, error) {
	fields, err := procStatLine(statFile, "cpu")
	if err != nil {
		return 0, err
	}
	if len(fields) < 8 {
		return 0, fmt.Errorf("%s: short cpu line %q", statFile, fields)
	}
	var busy uint64
	for _, i := range []int{0, 1, 2, 5, 6, 7} { // user nice system irq softirq steal
		v, err := strconv.ParseUint(fields[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: cpu field %d: %w", statFile, i, err)
		}
		busy += v
	}
	return busy * (uint64(time.Second) / userHZ), nil
}

// bootTime is the btime line of /proc/stat: the node's start time in the summary.
func bootTime(statFile string) (time.Time, error) {
	fields, err := procStatLine(statFile, "btime")
	if err != nil {
		return time.Time{}, err
	}
	if len(fields) == 0 {
		return time.Time{}, fmt.Errorf("%s: empty btime line", statFile)
	}
	sec, err := strconv.ParseInt(fields[0], 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: btime: %w", statFile, err)
	}
	return time.Unix(sec, 0), nil
}

// procStatLine returns the fields after key on the line of a /proc/stat-like file that
// starts with it.
func procStatLine(path, key string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 && fields[0] == key {
			return fields[1:], nil
		}
	}
	return nil, fmt.Errorf("%s: no %q line", path, key)
}

// keyValues parses "Key: value [kB]" (meminfo) and "key value" (vmstat) files; kB values
// are returned in bytes.
func keyValues(path string) (map[string]uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	out := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		v, err := strconv.ParseUint(fields[1], 10, 64)
		if err != nil {
			continue
		}
		if len(fields) > 2 && fields[2] == "kB" {
			v *= 1024
		}
		out[strings.TrimSuffix(fields[0], ":")] = v
	}
	return out, nil
}

// nodeMemory follows kubelet's definitions on the machine's numbers: usage is what is
// not free, the working set is usage less inactive file pages (reclaimable), and
// available is capacity less the working set, the figure eviction acts on.
func nodeMemory(meminfoFile, vmstatFile string, at time.Time) (*statsapi.MemoryStats, *statsapi.SwapStats, error) {
	mi, err := keyValues(meminfoFile)
	if err != nil {
		return nil, nil, err
	}
	total, ok := mi["MemTotal"]
	if !ok {
		return nil, nil, fmt.Errorf("%s: no MemTotal", meminfoFile)
	}
	usage := total - min(mi["MemFree"], total)
	workingSet := usage - min(mi["Inactive(file)"], usage)
	mem := &statsapi.MemoryStats{
		Time:            metav1.NewTime(at),
		AvailableBytes:  ptr.To(total - workingSet),
		UsageBytes:      ptr.To(usage),
		WorkingSetBytes: ptr.To(workingSet),
		RSSBytes:        ptr.To(mi["AnonPages"]),
	}
	if vm, err := keyValues(vmstatFile); err == nil {
		mem.PageFaults, mem.MajorPageFaults = ptr.To(vm["pgfault"]), ptr.To(vm["pgmajfault"])
	}
	swap := &statsapi.SwapStats{
		Time:               metav1.NewTime(at),
		SwapAvailableBytes: ptr.To(mi["SwapFree"]),
		SwapUsageBytes:     ptr.To(mi["SwapTotal"] - min(mi["SwapFree"], mi["SwapTotal"])),
	}
	return mem, swap, nil
}

// ignoredInterface tells the interfaces cAdvisor leaves out of the node's network stats:
// loopback and the host ends of pod and container links.
func ignoredInterface(name string) bool {
	for _, prefix := range []string{"lo", "veth", "docker", "cni", "flannel", "nerdctl"} {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}

// nodeNetwork reads the host's interface counters from /proc/net/dev; the default
// interface is the one the default route leaves by (kubelet's "eth0" when none is found).
func nodeNetwork(netDevFile, routeFile string, at time.Time) (*statsapi.NetworkStats, error) {
	data, err := os.ReadFile(netDevFile)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", netDevFile, err)
	}
	net := &statsapi.NetworkStats{Time: metav1.NewTime(at)}
	for line := range strings.SplitSeq(string(data), "\n") {
		iface, ok := parseNetDev(line)
		if !ok || ignoredInterface(iface.Name) {
			continue
		}
		net.Interfaces = append(net.Interfaces, iface)
	}
	def := defaultRouteInterface(routeFile)
	for _, iface := range net.Interfaces {
		if iface.Name == def {
			net.InterfaceStats = iface
		}
	}
	return net, nil
}

// parseNetDev parses one "name: rx_bytes rx_packets rx_errs ... tx_bytes tx_packets tx_errs ..." line.
func parseNetDev(line string) (statsapi.InterfaceStats, bool) {
	name, counters, ok := strings.Cut(line, ":")
	fields := strings.Fields(counters)
	if !ok || len(fields) < 11 {
		return statsapi.InterfaceStats{}, false
	}
	var v [4]uint64
	for i, f := range []int{0, 2, 8, 10} { // rx_bytes rx_errs tx_bytes tx_errs
		n, err := strconv.ParseUint(fields[f], 10, 64)
		if err != nil {
			return statsapi.InterfaceStats{}, false
		}
		v[i] = n
	}
	return statsapi.InterfaceStats{
		Name:    strings.TrimSpace(name),
		RxBytes: ptr.To(v[0]), RxErrors: ptr.To(v[1]), TxBytes: ptr.To(v[2]), TxErrors: ptr.To(v[3]),
	}, true
}

// defaultRouteInterface is the interface of the IPv4 default route in /proc/net/route.
func defaultRouteInterface(routeFile string) string {
	data, err := os.ReadFile(routeFile)
	if err != nil {
		return "eth0"
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && f[1] == "00000000" && f[0] != "Iface" {
			return f[0]
		}
	}
	return "eth0"
}

// nodeRlimit is kubelet's rlimit: the PID limit and the number of tasks (threads, which
// take PIDs too) from /proc/loadavg's "running/total" field.
func nodeRlimit(pidMaxFile, loadavgFile string, at time.Time) (*statsapi.RlimitStats, error) {
	maxData, err := os.ReadFile(pidMaxFile)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", pidMaxFile, err)
	}
	maxPID, err := strconv.ParseInt(strings.TrimSpace(string(maxData)), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pidMaxFile, err)
	}
	rl := &statsapi.RlimitStats{Time: metav1.NewTime(at), MaxPID: &maxPID}
	load, err := os.ReadFile(loadavgFile)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", loadavgFile, err)
	}
	if f := strings.Fields(string(load)); len(f) > 3 {
		if _, total, ok := strings.Cut(f[3], "/"); ok {
			if n, err := strconv.ParseInt(total, 10, 64); err == nil {
				rl.NumOfRunningProcesses = &n
			}
		}
	}
	return rl, nil
}

// fsCapacity is the size side of a filesystem, from statfs.
type fsCapacity struct {
	capacity, available, inodes, inodesFree, used, inodesUsed uint64
}

// statfsNearest statfs-es dir or, when it does not exist yet, its nearest existing parent.
func statfsNearest(dir string) (fsCapacity, error) {
	for {
		var st unix.Statfs_t
		err := unix.Statfs(dir, &st)
		if err == nil {
			bs := uint64(st.Bsize)
			return fsCapacity{
				capacity: st.Blocks * bs, available: st.Bavail * bs, used: (st.Blocks - st.Bfree) * bs,
				inodes: st.Files, inodesFree: st.Ffree, inodesUsed: st.Files - st.Ffree,
			}, nil
		}
		parent := filepath.Dir(dir)
		if !errors.Is(err, unix.ENOENT) || parent == dir {
			return fsCapacity{}, fmt.Errorf("statfs %s: %w", dir, err)
		}
		dir = parent
	}
}

// stats is the filesystem's own view of itself: used is what statfs says is used.
func (c fsCapacity) stats(at time.Time) *statsapi.FsStats {
	return c.with(at, ptr.To(c.used), ptr.To(c.inodesUsed))
}

// with reports usage measured elsewhere (a directory walk, the runtime) against the
// filesystem's size. A zero fsCapacity (statfs failed) reports the usage alone.
func (c fsCapacity) with(at time.Time, used, inodesUsed *uint64) *statsapi.FsStats {
	fs := &statsapi.FsStats{Time: metav1.NewTime(at), UsedBytes: used, InodesUsed: inodesUsed}
	if c.capacity > 0 {
		fs.CapacityBytes, fs.AvailableBytes = ptr.To(c.capacity), ptr.To(c.available)
		fs.Inodes, fs.InodesFree = ptr.To(c.inodes), ptr.To(c.inodesFree)
	}
	return fs
}
