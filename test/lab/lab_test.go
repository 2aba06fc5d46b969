//go:build e2e

package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// The lab under test: its own prefix and networks, so that it can run next to `lab.sh up`
// with the defaults and next to other skiff tests.
const (
	prefix  = "sklt"
	labNet  = "10.245.0"
	podNet  = "10.246"
	labDir  = "/tmp/skiff-lab-" + prefix
	appSel  = "app=my-app"
	kubectl = "/usr/bin/kubectl"
)

type lab struct {
	t     *testing.T
	nodes int
}

func requireEnv(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set; run the lab test through `make lab`", name)
	}
	return v
}

// TestLab brings up N nodes, spreads the seed's ReplicaSet over them and checks that pods
// are reachable across nodes from nodes and from pods, then tears the lab down and checks
// that nothing of it is left on the host.
func TestLab(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("the lab needs root")
	}
	n := 3
	if v := os.Getenv("LAB_NODES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 2 {
			t.Fatalf("LAB_NODES=%q: want a number >= 2", v)
		}
	}
	for _, name := range []string{"SKIFF_BIN", "REGISTRY_BIN", "SKIFF_IMAGES"} {
		requireEnv(t, name)
	}
	l := &lab{t: t, nodes: n}
	before := takeSnapshot(t)
	t.Cleanup(func() { l.down(before) })
	l.script(10*time.Minute, "up", strconv.Itoa(n))

	nodes := l.checkNodes()
	t.Run("routes to other nodes' pod CIDRs", func(t *testing.T) { l.checkRoutes(t, nodes) })
	pods := l.spreadPods()
	t.Run("nodes reach pods on other nodes", func(t *testing.T) { l.checkNodeToPod(t, pods) })
	t.Run("pods reach pods on other nodes", func(t *testing.T) { l.checkPodToPod(t, pods) })
}

func nodeName(i int) string { return fmt.Sprintf("%s-n%d", prefix, i) }

// script runs lab.sh with the lab's environment.
func (l *lab) script(timeout time.Duration, args ...string) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "./lab.sh", args...)
	cmd.Env = append(os.Environ(), "LAB_PREFIX="+prefix, "LAB_NET="+labNet, "LAB_POD_NET="+podNet,
		"LAB_DIR="+labDir, "KUBECTL="+kubectl)
	out, err := cmd.CombinedOutput()
	if err != nil {
		l.t.Fatalf("lab.sh %s: %v\n%s", strings.Join(args, " "), err, lastLines(string(out), 80))
	}
	l.t.Logf("lab.sh %s:\n%s", strings.Join(args, " "), lastLines(string(out), 20))
}

func (l *lab) kubectl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectl, append([]string{
		"--kubeconfig", filepath.Join(labDir, "admin.kubeconfig"),
		"--cache-dir", filepath.Join(labDir, "kube-cache-test")}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

func (l *lab) mustKubectl(args ...string) string {
	l.t.Helper()
	out, err := l.kubectl(args...)
	if err != nil {
		l.t.Fatal(err)
	}
	return out
}

// checkNodes checks that every node registered with its pod CIDR and lab address.
func (l *lab) checkNodes() map[string]corev1.Node {
	l.t.Helper()
	var list corev1.NodeList
	if err := json.Unmarshal([]byte(l.mustKubectl("get", "nodes", "-o", "json")), &list); err != nil {
		l.t.Fatal(err)
	}
	nodes := map[string]corev1.Node{}
	for _, node := range list.Items {
		nodes[node.Name] = node
	}
	for i := 1; i <= l.nodes; i++ {
		node, ok := nodes[nodeName(i)]
		if !ok {
			l.t.Fatalf("node %s is not registered (nodes: %v)", nodeName(i), keys(nodes))
		}
		if want := fmt.Sprintf("%s.%d.0/24", podNet, i); node.Spec.PodCIDR != want {
			l.t.Errorf("node %s: spec.podCIDR = %q, want %q", node.Name, node.Spec.PodCIDR, want)
		}
		if want := fmt.Sprintf("%s.%d", labNet, 10+i); internalIP(node) != want {
			l.t.Errorf("node %s: InternalIP = %q, want %q", node.Name, internalIP(node), want)
		}
	}
	return nodes
}

func internalIP(node corev1.Node) string {
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}

// checkRoutes reads each node's routing table: exactly the other nodes' pod CIDRs via their
// InternalIPs, marked with skiff's route protocol.
func (l *lab) checkRoutes(t *testing.T, nodes map[string]corev1.Node) {
	for i := 1; i <= l.nodes; i++ {
		var want []string
		for j := 1; j <= l.nodes; j++ {
			if j != i {
				other := nodes[nodeName(j)]
				want = append(want, fmt.Sprintf("%s via %s", other.Spec.PodCIDR, internalIP(other)))
			}
		}
		sort.Strings(want)
		deadline := time.Now().Add(30 * time.Second)
		for {
			got := routesOf(t, nodeName(i))
			if strings.Join(got, "; ") == strings.Join(want, "; ") {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("node %s routes (proto 197) = %q, want %q", nodeName(i), got, want)
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
}

func routesOf(t *testing.T, netns string) []string {
	out, err := exec.Command("ip", "-n", netns, "-4", "route", "show", "proto", "197").CombinedOutput()
	if err != nil {
		t.Fatalf("ip -n %s route: %v\n%s", netns, err, out)
	}
	var routes []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[1] == "via" {
			routes = append(routes, f[0]+" via "+f[2])
		}
	}
	sort.Strings(routes)
	return routes
}

// spreadPods creates the seed's ReplicaSet, scales it to 2N and waits until every pod runs;
// it returns the running pods by node and fails unless every node got at least one.
func (l *lab) spreadPods() map[string][]corev1.Pod {
	l.t.Helper()
	l.mustKubectl("apply", "-f", "../e2e/testdata/replicaset.yaml")
	want := 2 * l.nodes
	l.mustKubectl("scale", "rs", "my-replicaset", fmt.Sprintf("--replicas=%d", want))
	var byNode map[string][]corev1.Pod
	l.waitFor(fmt.Sprintf("%d running pods", want), 5*time.Minute, func() bool {
		byNode = l.runningPods()
		count := 0
		for _, pods := range byNode {
			count += len(pods)
		}
		return count == want
	})
	spread := map[string]int{}
	for i := 1; i <= l.nodes; i++ {
		spread[nodeName(i)] = len(byNode[nodeName(i)])
		if len(byNode[nodeName(i)]) == 0 {
			l.t.Errorf("no pod was scheduled to %s: %v", nodeName(i), spread)
		}
	}
	l.t.Logf("pods per node: %v", spread)
	if l.t.Failed() {
		l.t.FailNow()
	}
	return byNode
}

func (l *lab) runningPods() map[string][]corev1.Pod {
	out, err := l.kubectl("get", "pods", "-l", appSel, "-o", "json")
	if err != nil {
		return nil
	}
	var list corev1.PodList
	if json.Unmarshal([]byte(out), &list) != nil {
		return nil
	}
	byNode := map[string][]corev1.Pod{}
	for _, pod := range list.Items {
		if pod.Status.Phase == corev1.PodRunning && pod.Status.PodIP != "" && pod.DeletionTimestamp == nil {
			byNode[pod.Spec.NodeName] = append(byNode[pod.Spec.NodeName], pod)
		}
	}
	return byNode
}

// checkNodeToPod fetches nginx's page from every pod on every other node, from inside each
// node's network namespace.
func (l *lab) checkNodeToPod(t *testing.T, pods map[string][]corev1.Pod) {
	for i := 1; i <= l.nodes; i++ {
		for j := 1; j <= l.nodes; j++ {
			if i == j {
				continue
			}
			for _, pod := range pods[nodeName(j)] {
				out, err := exec.Command("ip", "netns", "exec", nodeName(i),
					"curl", "-s", "--max-time", "5", "http://"+pod.Status.PodIP+"/").CombinedOutput()
				if err != nil || !strings.Contains(string(out), "<title>Welcome to nginx!</title>") {
					t.Errorf("node %s -> pod %s (%s on %s): %v\n%s", nodeName(i), pod.Name, pod.Status.PodIP, nodeName(j), err, lastLines(string(out), 5))
				}
			}
		}
	}
}

// checkPodToPod runs a busybox pod on every node that fetches the page of a pod on the next
// node and prints its title; `kubectl logs` reads it through the apiserver and the kubelet
// API of the client's node.
func (l *lab) checkPodToPod(t *testing.T, pods map[string][]corev1.Pod) {
	clients := map[string]string{} // client pod -> target IP
	targets := map[string]string{} // client pod -> target pod
	for i := 1; i <= l.nodes; i++ {
		target := pods[nodeName(i%l.nodes+1)][0]
		name := fmt.Sprintf("client-%d", i)
		clients[name] = target.Status.PodIP
		targets[name] = target.Name
		manifest := clientPod(name, nodeName(i), target.Status.PodIP)
		cmd := exec.Command(kubectl, "--kubeconfig", filepath.Join(labDir, "admin.kubeconfig"), "apply", "-f", "-")
		cmd.Stdin = strings.NewReader(manifest)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("creating %s: %v\n%s", name, err, out)
		}
	}
	for name, ip := range clients {
		var phase string
		l.waitFor(name+" to finish", 2*time.Minute, func() bool {
			out, err := l.kubectl("get", "pod", name, "-o", "jsonpath={.status.phase}")
			phase = out
			return err == nil && (phase == "Succeeded" || phase == "Failed")
		})
		logs, err := l.kubectl("logs", name)
		if err != nil || phase != "Succeeded" || !strings.Contains(logs, "<title>Welcome to nginx!</title>") {
			t.Errorf("pod %s -> %s: phase %s, logs %q, err %v", name, ip, phase, logs, err)
			continue
		}
		t.Logf("pod %s -> %s: %s", name, ip, strings.TrimSpace(logs))
		// No NAT between pods: nginx logs the client pod's own address.
		clientIP, _ := l.kubectl("get", "pod", name, "-o", "jsonpath={.status.podIP}")
		access, err := l.kubectl("logs", targets[name])
		if err != nil || clientIP == "" || !strings.Contains(access, clientIP+" ") {
			t.Errorf("pod %s (%s) -> %s: the target's access log does not show the client's address: %v\n%s",
				name, clientIP, targets[name], err, lastLines(access, 10))
		}
	}
}

// clientPod is a pod pinned to node that fetches http://ip/ with busybox's nc (the image's
// busybox wget crashes) until it gets nginx's title, for up to 30 tries.
func clientPod(name, node, ip string) string {
	script := fmt.Sprintf(`for i in $(seq 30); do printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 2 %s 80 | grep -o '<title>.*</title>' && exit 0; sleep 1; done; exit 1`, ip)
	quoted, _ := json.Marshal(script)
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  nodeName: %s
  restartPolicy: Never
  containers:
  - name: fetch
    image: busybox
    command: ["sh", "-c", %s]
`, name, node, quoted)
}

func (l *lab) waitFor(what string, timeout time.Duration, cond func() bool) {
	l.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			l.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(time.Second)
	}
}

// down tears the lab down with lab.sh and checks that the host is as before: no network
// namespace, link, route, iptables rule, mount, process or directory of the lab is left.
func (l *lab) down(before snapshot) {
	t := l.t
	if t.Failed() {
		for _, name := range []string{"server.log", nodeName(1) + ".log"} {
			if data, err := os.ReadFile(filepath.Join(labDir, name)); err == nil {
				t.Logf("%s (end):\n%s", name, lastLines(string(data), 60))
			}
		}
	}
	l.script(5*time.Minute, "down")
	checkNothingLeft(t, before, labDir, prefix+"-", labDir, labNet+".", podNet+".")
}

// checkNothingLeft fails for every line of the host's state that is new since before and
// carries one of marks (the lab's names, dirs and networks): other tests may be changing
// the rest of the host at the same time.
func checkNothingLeft(t *testing.T, before snapshot, dir string, marks ...string) {
	t.Helper()
	for what, lines := range takeSnapshot(t) {
		for _, line := range lines {
			for _, mark := range marks {
				if strings.Contains(line, mark) && !before.has(what, line) {
					t.Errorf("left behind in %s: %s", what, line)
					break
				}
			}
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after the teardown (stat: %v)", dir, err)
	}
}

// TestVagrantProvisioning runs deploy/vagrant's provisioning scripts on namespace "VMs"
// (vagrant.sh): a server and two agents that join with kubeconfigs the server issued, run
// from the systemd units' ExecStart lines, spread pods and route to each other's pods.
func TestVagrantProvisioning(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("the lab needs root")
	}
	for _, name := range []string{"SKIFF_BIN", "REGISTRY_BIN", "SKIFF_IMAGES"} {
		requireEnv(t, name)
	}
	const (
		vPrefix = "skvt"
		vDir    = "/tmp/skiff-vlab-" + vPrefix
	)
	// Two /16s nothing on the host routes yet, so another lab or test can run beside this.
	nets := freeSixteens(t, 2)
	vNet, vPodNet := nets[0]+".0", nets[1]
	before := takeSnapshot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	env := append(os.Environ(), "VLAB_PREFIX="+vPrefix, "VLAB_NET="+vNet, "VLAB_POD_NET="+vPodNet,
		"VLAB_DIR="+vDir, "KUBECTL="+kubectl)
	cmd := exec.CommandContext(ctx, "./vagrant.sh", "test", "2")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("vagrant.sh test 2: %v\n%s", err, lastLines(string(out), 80))
		// A run killed by the timeout had no chance to clean up.
		down := exec.Command("./vagrant.sh", "down")
		down.Env = env
		if out, err := down.CombinedOutput(); err != nil {
			t.Errorf("vagrant.sh down: %v\n%s", err, out)
		}
	} else {
		t.Logf("vagrant.sh test 2:\n%s", grepLines(string(out), "vagrant-lab:"))
	}
	// The VMs' skiff runs with the units' default paths inside the VM's mount namespace:
	// a pod left behind shows up on the host as a shim serving that socket.
	checkNothingLeft(t, before, vDir, vPrefix+"-", vDir, vNet+".", vPodNet+".",
		"-address /run/skiff/containerd/containerd.sock")
}

// freeSixteens returns n prefixes "10.X" of /16s that no route on the host overlaps.
func freeSixteens(t *testing.T, n int) []string {
	t.Helper()
	out, err := exec.Command("ip", "-4", "route", "show").Output()
	if err != nil {
		t.Fatalf("ip route: %v", err)
	}
	var free []string
	for x := 200; x < 255 && len(free) < n; x++ {
		prefix := fmt.Sprintf("10.%d", x)
		if !strings.Contains(string(out), prefix+".") {
			free = append(free, prefix)
		}
	}
	if len(free) < n {
		t.Fatalf("no %d free 10.x/16 ranges between 10.200 and 10.254", n)
	}
	return free
}

func grepLines(s, substr string) string {
	var keep []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, substr) {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

// snapshot is the host state the lab must leave as it found: kind -> lines.
type snapshot map[string][]string

func (s snapshot) has(what, line string) bool {
	for _, l := range s[what] {
		if l == line {
			return true
		}
	}
	return false
}

func takeSnapshot(t *testing.T) snapshot {
	t.Helper()
	s := snapshot{}
	for what, argv := range map[string][]string{
		"iptables":  {"iptables-save"},
		"links":     {"ip", "-o", "link", "show"},
		"netns":     {"ip", "netns", "list"},
		"routes":    {"ip", "-4", "route", "show"},
		"processes": {"ps", "-eo", "pid,args"},
	} {
		out, err := exec.Command(argv[0], argv[1:]...).Output()
		if err != nil {
			t.Fatalf("%s: %v", strings.Join(argv, " "), err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
				continue // iptables-save's dated comments
			}
			s[what] = append(s[what], line)
		}
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(line); len(f) > 4 {
			s["mounts"] = append(s["mounts"], f[4])
		}
	}
	return s
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func lastLines(s string, count int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > count {
		lines = lines[len(lines)-count:]
	}
	return strings.Join(lines, "\n")
}
