//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// volumesPod mounts a configMap, a secret and an emptyDir into nginx's image; its
// container prints the projected files to its log every second, so that what the
// container sees (not only what the node wrote) is checked through kubectl logs.
const volumesPod = `apiVersion: v1
kind: Pod
metadata:
  name: %[1]s
  labels:
    e2e: volumes
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: nginx
    command: ["sh", "-c"]
    args:
    - |
      echo scratch-ok > /scratch/probe
      while true; do
        echo "cfg=$(cat /etc/cfg/greeting) secret=$(cat /etc/sec/password) scratch=$(cat /scratch/probe) proj=$(cat /proj/cfg/greeting)/$(cat /proj/password)/$(cat /proj/podname) name=$(cat /info/name) sub=$(cat /etc/greeting) cfg-writable=$(touch /etc/cfg/x 2>/dev/null && echo yes || echo no)"
        sleep 1
      done
    volumeMounts:
    - {name: cfg, mountPath: /etc/cfg}
    - {name: sec, mountPath: /etc/sec, readOnly: true}
    - {name: scratch, mountPath: /scratch}
    - {name: shm, mountPath: /shm}
    - {name: info, mountPath: /info}
    - {name: proj, mountPath: /proj}
    - {name: cfg, mountPath: /etc/greeting, subPath: greeting}
  volumes:
  - name: cfg
    configMap: {name: %[2]s}
  - name: sec
    secret: {secretName: e2e-secret}
  - name: scratch
    emptyDir: {}
  - name: shm
    emptyDir: {medium: Memory, sizeLimit: 16Mi}
  - name: info
    downwardAPI:
      items:
      - {path: name, fieldRef: {fieldPath: metadata.name}}
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
  - name: proj
    projected:
      sources:
      - configMap: {name: e2e-config, items: [{key: greeting, path: cfg/greeting}]}
      - secret: {name: e2e-secret}
      - downwardAPI: {items: [{path: podname, fieldRef: {fieldPath: metadata.name}}]}
      - serviceAccountToken: {path: token}
`

// TestVolumes runs configMap, secret and emptyDir volumes on `skiff up`: kubectl manages
// the configMaps and secrets, the files reach the container and follow an edit, a pod
// waiting for a missing configMap starts once it exists, and deleting the pods leaves no
// volume directory or mount on the node.
func TestVolumes(t *testing.T) {
	registryConfig := startMirror(t, requireEnv(t, "SKIFF_IMAGES"))
	n := newNode(t, registryConfig)
	n.start()

	t.Run("kubectl manages configmaps and secrets", func(t *testing.T) { checkConfigKubectl(t, n) })
	var uids []string
	t.Run("files reach the container and follow an edit", func(t *testing.T) {
		uids = append(uids, checkVolumeFiles(t, n))
	})
	t.Run("a restart keeps the volumes and their updates", func(t *testing.T) { checkVolumesRestart(t, n) })
	t.Run("a missing configMap holds the pod in ContainerCreating", func(t *testing.T) {
		uids = append(uids, checkMissingConfigMap(t, n))
	})
	t.Run("deleting the pods removes their volumes", func(t *testing.T) { checkVolumesRemoved(t, n, uids) })
}

func checkConfigKubectl(t *testing.T, n *node) {
	n.kubectl("create", "configmap", "e2e-config", "--from-literal=greeting=hello")
	n.kubectl("create", "secret", "generic", "e2e-secret", "--from-literal=password=s3cret")
	table := n.kubectl("get", "cm,secret")
	for _, want := range []string{"NAME", "DATA", "TYPE", "configmap/e2e-config", "secret/e2e-secret", "Opaque"} {
		if !strings.Contains(table, want) {
			t.Errorf("kubectl get cm,secret lacks %q:\n%s", want, table)
		}
	}
	if out := n.kubectl("get", "secret", "--field-selector", "type=Opaque", "-o", "name"); !strings.Contains(out, "secret/e2e-secret") {
		t.Errorf("secrets of type Opaque: %q", out)
	}
	if out := n.kubectl("describe", "cm", "e2e-config"); !strings.Contains(out, "greeting:") || !strings.Contains(out, "hello") {
		t.Errorf("kubectl describe cm:\n%s", out)
	}
	var secret corev1.Secret
	if err := json.Unmarshal([]byte(n.kubectl("get", "secret", "e2e-secret", "-o", "json")), &secret); err != nil {
		t.Fatal(err)
	}
	if secret.Type != corev1.SecretTypeOpaque || string(secret.Data["password"]) != "s3cret" {
		t.Errorf("secret = type %q data %q", secret.Type, secret.Data)
	}
	// Bad input is refused by the apiserver naming the field (kubectl create configmap
	// would check the key itself, so the object comes from a file).
	bad := n.kubectlCmd("create", "-f", "-")
	bad.Stdin = strings.NewReader("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\ndata:\n  no/slash: x\n")
	if out, err := bad.CombinedOutput(); err == nil || !strings.Contains(string(out), "data[no/slash]: Invalid value") {
		t.Errorf("a key with a slash: err %v, output %q", err, out)
	}
	tls := n.kubectlCmd("create", "-f", "-")
	tls.Stdin = strings.NewReader("apiVersion: v1\nkind: Secret\nmetadata:\n  name: bad-tls\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: cert\n")
	if out, err := tls.CombinedOutput(); err == nil || !strings.Contains(string(out), "data[tls.key]: Required value") {
		t.Errorf("a tls secret without tls.key: err %v, output %q", err, out)
	}
	// apply (client- and server-side) and edit.
	apply := func(args ...string) {
		cmd := n.kubectlCmd(append([]string{"apply", "-f", "-"}, args...)...)
		cmd.Stdin = strings.NewReader("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: e2e-applied\ndata:\n  k: first\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kubectl apply %v: %v\n%s", args, err, out)
		}
	}
	apply()
	apply("--server-side")
	edit := n.kubectlCmd("edit", "cm", "e2e-applied")
	edit.Env = append(os.Environ(), `KUBE_EDITOR=sed -i s/first/second/`)
	if out, err := edit.CombinedOutput(); err != nil {
		t.Fatalf("kubectl edit: %v\n%s", err, out)
	}
	if got := n.kubectl("get", "cm", "e2e-applied", "-o", "jsonpath={.data.k}"); got != "second" {
		t.Errorf("after kubectl edit, data.k = %q, want second", got)
	}
	n.kubectl("delete", "cm", "e2e-applied")
}

// kubectlCmd is kubectl against the node, for callers that need stdin or an environment.
func (n *node) kubectlCmd(args ...string) *exec.Cmd {
	return exec.Command("/usr/bin/kubectl", append([]string{"--kubeconfig", n.kubecfg, "--cache-dir", n.cacheDir}, args...)...)
}

func createFromYAML(t *testing.T, n *node, yaml string) {
	t.Helper()
	cmd := n.kubectlCmd("create", "-f", "-")
	cmd.Stdin = strings.NewReader(yaml)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl create: %v\n%s", err, out)
	}
}

func (n *node) getPod(name string) (*corev1.Pod, error) {
	out, _, err := n.kubectlQuiet("get", "pod", name, "-o", "json")
	if err != nil {
		return nil, err
	}
	var pod corev1.Pod
	return &pod, json.Unmarshal([]byte(out), &pod)
}

// waitPodRunning waits for the pod to run; on timeout the failure shows kubectl describe.
func waitPodRunning(t *testing.T, n *node, name string, timeout time.Duration) *corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		pod, err := n.getPod(name)
		if err == nil && pod.Status.Phase == corev1.PodRunning {
			return pod
		}
		if time.Now().After(deadline) {
			out, _, _ := n.kubectlQuiet("describe", "pod", name)
			t.Fatalf("pod %s not Running after %v (%v):\n%s", name, timeout, err, out)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (n *node) podVolumeDir(uid, plugin, volume string) string {
	return filepath.Join(n.dataDir, "agent", "pods", uid, "volumes", plugin, volume)
}

// waitUntil is node.waitFor for subtests: it fails the subtest, not its parent.
func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (last error: %v)", what, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitLog waits for a line of the pod's log that contains want.
func waitLog(t *testing.T, n *node, pod, want string, timeout time.Duration) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("%q in the log of %s", want, pod), timeout, func() (bool, error) {
		out, _, err := n.kubectlQuiet("logs", pod, "--tail", "3")
		return err == nil && strings.Contains(out, want), err
	})
}

func checkVolumeFiles(t *testing.T, n *node) string {
	createFromYAML(t, n, fmt.Sprintf(volumesPod, "vol-pod", "e2e-config"))
	pod := waitPodRunning(t, n, "vol-pod", time.Minute)
	uid := string(pod.UID)
	waitLog(t, n, "vol-pod", "cfg=hello secret=s3cret scratch=scratch-ok proj=hello/s3cret/vol-pod name=vol-pod sub=hello cfg-writable=no", time.Minute)

	cfgFile := filepath.Join(n.podVolumeDir(uid, "kubernetes.io~configmap", "cfg"), "greeting")
	if data, err := os.ReadFile(cfgFile); err != nil || string(data) != "hello" {
		t.Errorf("%s = %q, %v", cfgFile, data, err)
	}
	if target, err := os.Readlink(cfgFile); err != nil || target != "..data/greeting" {
		t.Errorf("%s links to %q (%v), want ..data/greeting", cfgFile, target, err)
	}
	for _, dir := range []string{
		n.podVolumeDir(uid, "kubernetes.io~secret", "sec"),
		n.podVolumeDir(uid, "kubernetes.io~projected", "proj"),
		n.podVolumeDir(uid, "kubernetes.io~empty-dir", "shm"),
	} {
		if !mounted(t, dir, "tmpfs") {
			t.Errorf("%s is not a tmpfs mount", dir)
		}
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(n.podVolumeDir(uid, "kubernetes.io~empty-dir", "shm"), &st); err != nil || uint64(st.Blocks)*uint64(st.Bsize) != 16<<20 {
		t.Errorf("memory emptyDir size = %d bytes (%v), want its sizeLimit 16Mi", uint64(st.Blocks)*uint64(st.Bsize), err)
	}
	labels := filepath.Join(n.podVolumeDir(uid, "kubernetes.io~downward-api", "info"), "labels")
	if data, err := os.ReadFile(labels); err != nil || string(data) != `e2e="volumes"` {
		t.Errorf("%s = %q, %v", labels, data, err)
	}
	if ev := findPodEvent(t, n, "vol-pod", "FailedMount", `serviceAccountToken "token"`); ev == nil {
		t.Errorf("no event says the serviceAccountToken projection was skipped")
	}

	edit := n.kubectlCmd("edit", "cm", "e2e-config")
	edit.Env = append(os.Environ(), `KUBE_EDITOR=sed -i s/hello/goodbye/`)
	if out, err := edit.CombinedOutput(); err != nil {
		t.Fatalf("kubectl edit cm: %v\n%s", err, out)
	}
	edited := time.Now()
	waitUntil(t, "the edited configMap in the pod's volume", 90*time.Second, func() (bool, error) {
		data, err := os.ReadFile(cfgFile)
		return err == nil && string(data) == "goodbye", err
	})
	t.Logf("the edit reached the volume in %v", time.Since(edited).Round(100*time.Millisecond))
	waitLog(t, n, "vol-pod", "cfg=goodbye secret=s3cret scratch=scratch-ok proj=goodbye/", 30*time.Second)
	return uid
}

// checkVolumesRestart restarts skiff under the running pod: the container and its mounts
// stay as they were (no tmpfs mounted twice) and configMap edits still reach the volume.
func checkVolumesRestart(t *testing.T, n *node) {
	before, err := n.getPod("vol-pod")
	if err != nil {
		t.Fatal(err)
	}
	podsDir := filepath.Join(n.dataDir, "agent", "pods")
	mountsBefore := mountsUnder(t, podsDir)
	n.stop()
	n.start()
	after := waitPodRunning(t, n, "vol-pod", time.Minute)
	if a, b := after.Status.ContainerStatuses[0].ContainerID, before.Status.ContainerStatuses[0].ContainerID; a != b {
		t.Errorf("container %s before the restart, %s after", b, a)
	}
	n.kubectl("patch", "cm", "e2e-config", "-p", `{"data":{"greeting":"after-restart"}}`)
	cfgFile := filepath.Join(n.podVolumeDir(string(after.UID), "kubernetes.io~configmap", "cfg"), "greeting")
	waitUntil(t, "the configMap patched after the restart in the volume", 90*time.Second, func() (bool, error) {
		data, err := os.ReadFile(cfgFile)
		return err == nil && string(data) == "after-restart", err
	})
	if mountsAfter := mountsUnder(t, podsDir); !maps.Equal(mountsAfter, mountsBefore) {
		t.Errorf("mounts under %s before the restart %v, after %v", podsDir, mountsBefore, mountsAfter)
	}
}

func checkMissingConfigMap(t *testing.T, n *node) string {
	createFromYAML(t, n, fmt.Sprintf(volumesPod, "late-pod", "late-config"))
	want := `MountVolume.SetUp failed for volume "cfg" : configmap "late-config" not found`
	waitUntil(t, "the FailedMount event", 2*time.Minute, func() (bool, error) {
		ev := findPodEvent(t, n, "late-pod", "FailedMount", want)
		return ev != nil && ev.Message == want, nil
	})
	pod, err := n.getPod("late-pod")
	if err != nil {
		t.Fatal(err)
	}
	if pod.Status.Phase != corev1.PodPending {
		t.Errorf("phase = %s, want Pending", pod.Status.Phase)
	}
	if cs := pod.Status.ContainerStatuses; len(cs) != 1 || cs[0].State.Waiting == nil || cs[0].State.Waiting.Reason != "ContainerCreating" {
		t.Errorf("container statuses = %+v, want one waiting in ContainerCreating", cs)
	}
	if out := n.kubectl("get", "pod", "late-pod"); !strings.Contains(out, "ContainerCreating") {
		t.Errorf("kubectl get pod:\n%s", out)
	}

	n.kubectl("create", "configmap", "late-config", "--from-literal=greeting=finally")
	created := time.Now()
	late := waitPodRunning(t, n, "late-pod", time.Minute)
	t.Logf("the pod started %v after its configMap was created", time.Since(created).Round(100*time.Millisecond))
	waitLog(t, n, "late-pod", "cfg=finally", time.Minute)
	return string(late.UID)
}

func checkVolumesRemoved(t *testing.T, n *node, uids []string) {
	n.kubectl("delete", "pod", "-l", "e2e=volumes", "--wait=true")
	for _, uid := range uids {
		dir := filepath.Join(n.dataDir, "agent", "pods", uid)
		waitUntil(t, "pod dir "+dir+" removed", time.Minute, func() (bool, error) {
			_, err := os.Stat(dir)
			return os.IsNotExist(err), err
		})
	}
	podsDir := filepath.Join(n.dataDir, "agent", "pods")
	if mps := mountsUnder(t, podsDir); len(mps) > 0 {
		t.Errorf("mounts left under %s: %v", podsDir, mps)
	}
}

// findPodEvent returns the pod's Warning event with this reason whose message contains
// part, or nil.
func findPodEvent(t *testing.T, n *node, pod, reason, part string) *corev1.Event {
	t.Helper()
	out, _, err := n.kubectlQuiet("get", "events", "--field-selector", "involvedObject.name="+pod, "-o", "json")
	if err != nil {
		return nil
	}
	var events corev1.EventList
	if err := json.Unmarshal([]byte(out), &events); err != nil {
		t.Fatalf("decoding events: %v", err)
	}
	for i, ev := range events.Items {
		if ev.Reason == reason && ev.Type == corev1.EventTypeWarning && strings.Contains(ev.Message, part) {
			return &events.Items[i]
		}
	}
	return nil
}

// mountsUnder lists the mount points at or below dir with their filesystem types.
func mountsUnder(t *testing.T, dir string) map[string]string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// mount ID, parent, dev, root, mount point, options, optional fields..., "-", fstype, ...
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if len(fields) < 5 || sep < 0 || sep+1 >= len(fields) {
			continue
		}
		if mp := fields[4]; mp == dir || strings.HasPrefix(mp, dir+"/") {
			out[mp] = fields[sep+1]
		}
	}
	return out
}

func mounted(t *testing.T, dir, fstype string) bool {
	t.Helper()
	return mountsUnder(t, dir)[dir] == fstype
}
