//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-sh/skiff/test/registry/mirror"
)

// node is one `skiff up` with every path, port and name of its own, so that a test run
// can share the machine with another skiff.
type node struct {
	t        testing.TB
	bin      string
	name     string
	dataDir  string
	runDir   string
	logPath  string
	kubecfg  string
	cacheDir string // kubectl's discovery cache, fresh per node

	apiPort, etcdPort, etcdPeerPort, kubeletPort int
	bridge, podCIDR, registryConfig              string
	extraFlags                                   []string // more `skiff up` flags

	cmd  *exec.Cmd // `skiff up`, or `skiff agent` when split
	done chan error

	// split runs the control plane and the node as two processes, `skiff server` and
	// `skiff agent` (agent and CRI server), as on a real cluster, so that the node's own
	// memory can be measured.
	split      bool
	serverCmd  *exec.Cmd
	serverDone chan error
}

func requireEnv(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set; run the e2e tests through `make e2e`", name)
	}
	return v
}

func freePort(t testing.TB) int {
	t.Helper()
	return freePorts(t, 1)[0]
}

// freePorts returns count distinct ports that were free. The listeners stay open until
// all are chosen: closed one by one, the kernel may hand the same port out twice (seen:
// etcd's client port doubling as the kubelet port, which then failed to bind).
func freePorts(t testing.TB, count int) []int {
	t.Helper()
	ports := make([]int, 0, count)
	for range count {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("finding a free port: %v", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

func randomSuffix(t testing.TB) string {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// startMirror serves the project's images from an in-process registry and returns a
// registry-config dir pointing docker.io at it.
func startMirror(t testing.TB, imagesDir string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m, err := mirror.Start(ctx, fmt.Sprintf("127.0.0.1:%d", freePort(t)), map[string]string{
		"docker.io/library/nginx:latest": filepath.Join(imagesDir, "nginx"),
	})
	if err != nil {
		cancel()
		t.Fatalf("starting the registry mirror: %v", err)
	}
	t.Cleanup(func() { m.Close(); cancel() })
	dir := t.TempDir()
	if err := m.WriteHostsDir(dir); err != nil {
		t.Fatalf("writing hosts.toml: %v", err)
	}
	return dir
}

func newNode(t testing.TB, registryConfig string) *node {
	t.Helper()
	suffix := randomSuffix(t)
	root := t.TempDir()
	b := suffix[0:2]
	thirdOctet, _ := strconv.ParseUint(b, 16, 8)
	ports := freePorts(t, 4)
	n := &node{
		t:              t,
		bin:            requireEnv(t, "SKIFF_BIN"),
		name:           "e2e-" + suffix,
		dataDir:        filepath.Join(root, "data"),
		runDir:         filepath.Join(root, "run"),
		logPath:        filepath.Join(root, "skiff.log"),
		kubecfg:        filepath.Join(root, "admin.kubeconfig"),
		cacheDir:       filepath.Join(root, "kube-cache"),
		apiPort:        ports[0],
		etcdPort:       ports[1],
		etcdPeerPort:   ports[2],
		kubeletPort:    ports[3],
		bridge:         "skf" + suffix,
		podCIDR:        fmt.Sprintf("10.213.%d.0/24", thirdOctet),
		registryConfig: registryConfig,
	}
	t.Cleanup(n.teardown)
	return n
}

func (n *node) flags() []string {
	return []string{
		"--data-dir", n.dataDir,
		"--run-dir", n.runDir,
		"--bridge-name", n.bridge,
		"--pod-cidr", n.podCIDR,
		"--registry-config", n.registryConfig,
	}
}

func (n *node) upFlags() []string {
	return append(append(n.flags(),
		"--node-name", n.name,
		"--kubeconfig-out", n.kubecfg,
		"--apiserver-port", strconv.Itoa(n.apiPort),
		"--etcd-client-port", strconv.Itoa(n.etcdPort),
		"--etcd-peer-port", strconv.Itoa(n.etcdPeerPort),
		"--kubelet-port", strconv.Itoa(n.kubeletPort),
		"--v", "2",
	), n.extraFlags...)
}

// spawn starts skiff with args, its output appended to logPath; done gets its exit.
func (n *node) spawn(logPath string, args ...string) (*exec.Cmd, chan error) {
	n.t.Helper()
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		n.t.Fatal(err)
	}
	cmd := exec.Command(n.bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		n.t.Fatalf("starting skiff %s: %v", args[0], err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); logFile.Close() }()
	return cmd, done
}

// start runs `skiff up` (or, split, `skiff server` and `skiff agent`) and waits until
// the node reports Ready.
func (n *node) start() {
	n.t.Helper()
	if n.split {
		n.startServer()
		n.cmd, n.done = n.spawn(n.logPath, append([]string{"agent"}, n.agentFlags()...)...)
	} else {
		n.cmd, n.done = n.spawn(n.logPath, append([]string{"up"}, n.upFlags()...)...)
	}
	n.waitFor("node Ready", 3*time.Minute, func() (bool, error) {
		select {
		case err := <-n.done:
			n.done <- err
			return false, fmt.Errorf("skiff up exited: %v", err)
		default:
		}
		out, _, err := n.kubectlQuiet("get", "node", n.name, "-o", "json")
		if err != nil {
			return false, nil
		}
		var node corev1.Node
		if err := json.Unmarshal([]byte(out), &node); err != nil {
			return false, err
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
}

// startServer runs `skiff server` and issues the agent's kubeconfig from its CA.
func (n *node) startServer() {
	n.t.Helper()
	serverDir := n.dataDir + "-server"
	n.serverCmd, n.serverDone = n.spawn(n.logPath+".server", "server",
		"--data-dir", serverDir, "--run-dir", n.runDir+"-server",
		"--apiserver-port", strconv.Itoa(n.apiPort),
		"--etcd-client-port", strconv.Itoa(n.etcdPort), "--etcd-peer-port", strconv.Itoa(n.etcdPeerPort),
		"--kubeconfig-out", n.kubecfg, "--v", "2")
	n.waitFor("the apiserver", 2*time.Minute, func() (bool, error) {
		select {
		case err := <-n.serverDone:
			n.serverDone <- err
			return false, fmt.Errorf("skiff up exited: skiff server: %v", err)
		default:
		}
		_, _, err := n.kubectlQuiet("get", "--raw", "/readyz")
		return err == nil, err
	})
	out, err := exec.Command(n.bin, "kubeconfig", "--data-dir", serverDir, "--user", "system:node:"+n.name,
		"--group", "system:nodes", "--server", fmt.Sprintf("https://127.0.0.1:%d", n.apiPort),
		"--out", n.agentKubeconfig()).CombinedOutput()
	if err != nil {
		n.t.Fatalf("skiff kubeconfig for the agent: %v\n%s", err, out)
	}
}

func (n *node) agentKubeconfig() string { return n.kubecfg + ".agent" }

func (n *node) agentFlags() []string {
	return append(append(n.flags(),
		"--kubeconfig", n.agentKubeconfig(),
		"--node-name", n.name,
		"--kubelet-port", strconv.Itoa(n.kubeletPort),
		"--v", "2",
	), n.extraFlags...)
}

// stop sends SIGTERM to skiff (the agent first when split) and waits for a clean exit.
func (n *node) stop() {
	n.t.Helper()
	n.stopProcess("skiff", n.cmd, n.done)
	n.cmd = nil
	n.stopProcess("skiff server", n.serverCmd, n.serverDone)
	n.serverCmd = nil
}

func (n *node) stopProcess(what string, cmd *exec.Cmd, done chan error) {
	n.t.Helper()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			n.t.Errorf("%s did not exit cleanly after SIGTERM: %v", what, err)
		}
	case <-time.After(60 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		n.t.Errorf("%s did not exit within 60s of SIGTERM", what)
	}
}

// teardown stops skiff and removes every pod, network and file it made, even after a
// failure; on failure it prints the end of skiff's log first.
func (n *node) teardown() {
	if n.t.Failed() {
		if data, err := os.ReadFile(n.logPath); err == nil {
			const tail = 60000
			if len(data) > tail {
				data = data[len(data)-tail:]
			}
			n.t.Logf("skiff log (end):\n%s", data)
		}
	}
	n.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, n.bin, append([]string{"reset"}, n.flags()...)...).CombinedOutput()
	if err != nil {
		n.t.Errorf("skiff reset: %v\n%s", err, out)
	}
	if _, err := net.InterfaceByName(n.bridge); err == nil {
		n.t.Errorf("bridge %s still exists after skiff reset", n.bridge)
	}
}

func (n *node) kubectlQuiet(args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/kubectl",
		append([]string{"--kubeconfig", n.kubecfg, "--cache-dir", n.cacheDir}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// kubectl runs the stock kubectl and fails the test when it fails.
func (n *node) kubectl(args ...string) string {
	n.t.Helper()
	out, errOut, err := n.kubectlQuiet(args...)
	if err != nil {
		n.t.Fatalf("kubectl %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, lastLines(errOut, 40))
	}
	return out
}

func (n *node) waitFor(what string, timeout time.Duration, cond func() (bool, error)) {
	n.t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return
		}
		lastErr = err
		if err != nil && strings.Contains(err.Error(), "skiff up exited") {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	n.t.Fatalf("timed out waiting for %s (last error: %v)", what, lastErr)
}

func (n *node) pods(selector string) []corev1.Pod {
	n.t.Helper()
	var list corev1.PodList
	if err := json.Unmarshal([]byte(n.kubectl("get", "pods", "-l", selector, "-o", "json")), &list); err != nil {
		n.t.Fatalf("decoding kubectl get pods -o json: %v", err)
	}
	return list.Items
}

func lastLines(s string, count int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > count {
		lines = lines[len(lines)-count:]
	}
	return strings.Join(lines, "\n")
}
