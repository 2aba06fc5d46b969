package agent

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// podCgroupParent is the pod's cgroup in kubelet's cgroupfs layout under the configured
// root: <root>/pod<uid> for Guaranteed pods, <root>/burstable|besteffort/pod<uid> else.
func (a *Agent) podCgroupParent(pod *v1.Pod) string {
	return podCgroupPath(a.cfg.CgroupRoot, podQOSClass(pod), pod.UID)
}

func podCgroupPath(root string, qos v1.PodQOSClass, uid types.UID) string {
	switch qos {
	case v1.PodQOSGuaranteed:
		return filepath.Join(root, "pod"+string(uid))
	case v1.PodQOSBestEffort:
		return filepath.Join(root, "besteffort", "pod"+string(uid))
	default:
		return filepath.Join(root, "burstable", "pod"+string(uid))
	}
}

// removePodCgroups removes the pod's (now empty) cgroup directories from every cgroup
// hierarchy. The runtime creates them for the pod's containers and removes only its own
// leaves, so without this every pod would leave empty directories behind. rmdir fails on
// a cgroup that still has processes or children, so nothing in use is touched.
func (a *Agent) removePodCgroups(uid types.UID) []error {
	mounts, err := cgroupMounts("/proc/self/mountinfo")
	if err != nil {
		return []error{err}
	}
	var errs []error
	for _, qos := range []v1.PodQOSClass{v1.PodQOSGuaranteed, v1.PodQOSBurstable, v1.PodQOSBestEffort} {
		rel := podCgroupPath(a.cfg.CgroupRoot, qos, uid)
		for _, m := range mounts {
			err := unix.Rmdir(filepath.Join(m, rel))
			if err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, err)
			}
		}
	}
	return errs
}

// cgroupMounts lists the mount points of cgroup v1 and v2 hierarchies.
func cgroupMounts(mountinfo string) ([]string, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "... <mount point> <options> [optional fields] - <fs type> <source> <super options>"
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		fields, fsFields := strings.Fields(pre), strings.Fields(post)
		if len(fields) < 5 || len(fsFields) < 1 {
			continue
		}
		if fsFields[0] == "cgroup" || fsFields[0] == "cgroup2" {
			out = append(out, fields[4])
		}
	}
	return out, sc.Err()
}
