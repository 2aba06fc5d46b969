package agent

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	v1 "k8s.io/api/core/v1"
)

func TestCgroupMounts(t *testing.T) {
	info := `25 30 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
31 25 0:28 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
40 30 0:40 / /proc rw,nosuid - proc proc rw
`
	path := filepath.Join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(path, []byte(info), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := cgroupMounts(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup/memory"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("cgroupMounts = %v, want %v", got, want)
	}
}

func TestPodCgroupPath(t *testing.T) {
	for qos, want := range map[v1.PodQOSClass]string{
		v1.PodQOSGuaranteed: "/kubepods/podu1",
		v1.PodQOSBurstable:  "/kubepods/burstable/podu1",
		v1.PodQOSBestEffort: "/kubepods/besteffort/podu1",
	} {
		if got := podCgroupPath("/kubepods", qos, "u1"); got != want {
			t.Errorf("%s: %q, want %q", qos, got, want)
		}
	}
}
