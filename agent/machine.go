package agent

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// machineInfo is what the node status reports about the host. It is read once at start:
// none of it changes while the agent runs, except disk capacity, which is re-read.
type machineInfo struct {
	numCPU        int
	memoryBytes   int64
	kernelVersion string
	osImage       string
	machineID     string
	systemUUID    string
	bootID        string
	hostname      string
	// runtimeVersion is "<runtimeName>://<version>", filled in from CRI Version.
	runtimeVersion string
}

// readMachineInfo reads the host facts from /proc, /etc and uname. Missing optional
// files (machine-id, product_uuid) are left empty, as kubelet does.
func readMachineInfo() (machineInfo, error) {
	mem, err := memTotalBytes("/proc/meminfo")
	if err != nil {
		return machineInfo{}, err
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return machineInfo{}, fmt.Errorf("uname: %w", err)
	}
	hostname, err := os.Hostname()
	if err != nil {
		return machineInfo{}, fmt.Errorf("hostname: %w", err)
	}
	return machineInfo{
		numCPU:        goruntime.NumCPU(),
		memoryBytes:   mem,
		kernelVersion: unix.ByteSliceToString(uts.Release[:]),
		osImage:       osImage("/etc/os-release"),
		machineID:     readTrimmed("/etc/machine-id"),
		systemUUID:    readTrimmed("/sys/class/dmi/id/product_uuid"),
		bootID:        readTrimmed("/proc/sys/kernel/random/boot_id"),
		hostname:      strings.ToLower(hostname),
	}, nil
}

// memTotalBytes parses MemTotal (in kB) from a meminfo file.
func memTotalBytes(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read meminfo: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse MemTotal %q: %w", fields[1], err)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("no MemTotal in %s", path)
}

// osImage returns PRETTY_NAME from os-release, or "Linux" like kubelet/cadvisor.
func osImage(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "Linux"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"'`)
		}
	}
	return "Linux"
}

func readTrimmed(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

// diskCapacityBytes is the size of the filesystem holding dir (or its nearest existing
// parent, so a not-yet-created data dir still reports its future filesystem).
func diskCapacityBytes(dir string) (int64, error) {
	for {
		var st unix.Statfs_t
		err := unix.Statfs(dir, &st)
		if err == nil {
			return int64(st.Blocks) * st.Bsize, nil
		}
		parent := filepath.Dir(dir)
		if !errors.Is(err, unix.ENOENT) || parent == dir {
			return 0, fmt.Errorf("statfs %s: %w", dir, err)
		}
		dir = parent
	}
}

// capacity builds the node capacity; allocatable is the same (no reservations yet).
func (m machineInfo) capacity(diskBytes int64) v1.ResourceList {
	return v1.ResourceList{
		v1.ResourceCPU:              *resource.NewQuantity(int64(m.numCPU), resource.DecimalSI),
		v1.ResourceMemory:           *resource.NewQuantity(m.memoryBytes, resource.BinarySI),
		v1.ResourcePods:             *resource.NewQuantity(DefaultMaxPods, resource.DecimalSI),
		v1.ResourceEphemeralStorage: *resource.NewQuantity(diskBytes, resource.BinarySI),
	}
}

// firstHostIPv4 returns the first non-loopback IPv4 address of an interface that is up.
func firstHostIPv4() (string, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return "", fmt.Errorf("list interfaces: %w", err)
	}
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := iface.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
				return ipn.IP.String(), nil
			}
		}
	}
	return "", errors.New("no non-loopback IPv4 address on any interface that is up")
}
