//go:build e2e

package e2e

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// checkPodSpecCoverage runs one pod that uses the spec fields kubelet turns into runtime
// settings, and reads back from inside the container (through kubectl logs) what each
// one became: a sidecar init container beside the app, hostAliases in /etc/hosts,
// dnsPolicy None with dnsConfig in /etc/resolv.conf, runAsUser/runAsGroup; and, read on
// the host, the app container's limits as cgroup settings (Guaranteed QoS).
func checkPodSpecCoverage(t *testing.T, n *node) {
	applyYAML(t, n, `apiVersion: v1
kind: Pod
metadata:
  name: spec
spec:
  terminationGracePeriodSeconds: 1
  hostAliases:
  - ip: 10.1.2.3
    hostnames: [db.internal, db]
  dnsPolicy: None
  dnsConfig:
    nameservers: [10.9.9.9]
    searches: [svc.example]
    options:
    - {name: ndots, value: "3"}
  securityContext:
    runAsUser: 1234
    runAsGroup: 2345
  initContainers:
  - name: proxy
    image: nginx
    restartPolicy: Always
    command: ["sleep", "3600"]
    resources:
      limits: {cpu: 50m, memory: 32Mi}
  containers:
  - name: app
    image: nginx
    command: ["sh", "-c", "cat /etc/hosts /etc/resolv.conf; while read k v; do [ \"$k\" = Uid: ] && echo \"uid $v\"; [ \"$k\" = Gid: ] && echo \"gid $v\"; done < /proc/self/status; exec sleep 3600"]
    resources:
      requests: {cpu: 100m, memory: 64Mi}
      limits: {cpu: 100m, memory: 64Mi}
`)
	pod := waitPod(t, n, "spec", "Running and Ready", 2*time.Minute, func(p corev1.Pod) bool {
		c := podCondition(&p, corev1.PodReady)
		return p.Status.Phase == corev1.PodRunning && c != nil && c.Status == corev1.ConditionTrue
	})
	if pod.Status.QOSClass != corev1.PodQOSGuaranteed {
		t.Errorf("qosClass %q, want Guaranteed", pod.Status.QOSClass)
	}
	checkContainerCgroup(t, string(pod.UID))
	if len(pod.Status.InitContainerStatuses) != 1 || pod.Status.InitContainerStatuses[0].State.Running == nil ||
		!pod.Status.InitContainerStatuses[0].Ready {
		t.Errorf("sidecar status %s", mustJSON(pod.Status.InitContainerStatuses))
	}
	var logs string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && !strings.Contains(logs, "gid ") {
		logs = kc(t, n, "logs", "spec", "-c", "app")
		time.Sleep(500 * time.Millisecond)
	}
	for _, want := range []string{
		"10.1.2.3\tdb.internal\tdb",
		"nameserver 10.9.9.9",
		"search svc.example",
		"options ndots:3",
		"uid 1234",
		"gid 2345",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("container output lacks %q:\n%s", want, logs)
		}
	}
}

// checkContainerCgroup finds the app container's cgroup under the pod's cgroup on the host
// (cgroup v1) and checks the memory limit and CPU quota/shares kubelet would set for
// limits of 64Mi and 100m.
func checkContainerCgroup(t *testing.T, uid string) {
	t.Helper()
	want := map[string]string{"memory/memory.limit_in_bytes": "67108864", "cpu/cpu.cfs_quota_us": "10000", "cpu/cpu.shares": "102"}
	podDirs := map[string]string{}
	for _, hier := range []string{"memory", "cpu"} {
		root := filepath.Join("/sys/fs/cgroup", hier)
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			if d.Name() == "pod"+uid {
				podDirs[hier] = path
				return filepath.SkipAll
			}
			return nil
		})
	}
	for file, value := range want {
		hier, name, _ := strings.Cut(file, "/")
		dir, ok := podDirs[hier]
		if !ok {
			t.Errorf("no cgroup pod%s in the %s hierarchy", uid, hier)
			continue
		}
		children, _ := os.ReadDir(dir)
		var seen []string
		for _, c := range children {
			if data, err := os.ReadFile(filepath.Join(dir, c.Name(), name)); c.IsDir() && err == nil {
				seen = append(seen, strings.TrimSpace(string(data)))
			}
		}
		if !slices.Contains(seen, value) {
			t.Errorf("%s of the pod's containers: %v, want one with %s", file, seen, value)
		}
	}
}

// checkHostNetwork: a hostNetwork pod with dnsPolicy ClusterFirstWithHostNet runs in the
// node's network namespace, reports the node's IP as its pod IP, and gets the node's
// resolver (there is no cluster DNS to point it at).
func checkHostNetwork(t *testing.T, n *node) {
	applyYAML(t, n, `apiVersion: v1
kind: Pod
metadata:
  name: hostnet
spec:
  terminationGracePeriodSeconds: 1
  hostNetwork: true
  dnsPolicy: ClusterFirstWithHostNet
  containers:
  - name: app
    image: nginx
    command: ["sh", "-c", "cat /proc/net/dev; exec sleep 3600"]
`)
	pod := waitPod(t, n, "hostnet", "Running", 2*time.Minute, func(p corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	if pod.Status.PodIP == "" || pod.Status.PodIP != pod.Status.HostIP {
		t.Errorf("podIP %q, hostIP %q: want the node's IP", pod.Status.PodIP, pod.Status.HostIP)
	}
	var logs string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && logs == ""; time.Sleep(500 * time.Millisecond) {
		logs = kc(t, n, "logs", "hostnet")
	}
	// The node's bridge is visible only from the host's network namespace.
	if !strings.Contains(logs, n.bridge+":") {
		t.Errorf("container does not see the node's interfaces (bridge %s):\n%s", n.bridge, logs)
	}
}

// checkSharedProcessNamespace: with shareProcessNamespace the pod's containers see each
// other's processes, under the pod's own init (skiff's pause process), and each other's
// hostname and IPC namespace as always; without it, each container is its own PID 1.
func checkSharedProcessNamespace(t *testing.T, n *node) {
	applyYAML(t, n, `apiVersion: v1
kind: Pod
metadata:
  name: sharedpid
spec:
  terminationGracePeriodSeconds: 1
  shareProcessNamespace: true
  containers:
  - name: a
    image: nginx
    command: ["sleep", "3601"]
  - name: b
    image: nginx
    command: ["sleep", "3602"]
---
apiVersion: v1
kind: Pod
metadata:
  name: ownpid
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: a
    image: nginx
    command: ["sleep", "3603"]
`)
	for _, name := range []string{"sharedpid", "ownpid"} {
		waitPod(t, n, name, "Running", 2*time.Minute, func(p corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	}
	procs := kc(t, n, "exec", "sharedpid", "-c", "a", "--", "sh", "-c", "cat /proc/1/cmdline; echo; cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
	if !strings.HasPrefix(procs, "/pause") || !strings.Contains(procs, "sleep 3602") {
		t.Errorf("container a of a pod sharing its process namespace sees:\n%s\nwant /pause as PID 1 and container b's sleep 3602", procs)
	}
	if own := kc(t, n, "exec", "ownpid", "--", "cat", "/proc/1/cmdline"); !strings.HasPrefix(own, "sleep") {
		t.Errorf("PID 1 of a pod not sharing its process namespace runs %q, want its own sleep", own)
	}
}
