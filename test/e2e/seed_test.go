//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

const seedSelector = "app=my-app"

// TestSeed carries the seed's replicaset.yaml from the stock kubectl to nginx answering
// HTTP, then scales, replaces, restarts and deletes, checking what kubectl, curl, etcdctl
// and crictl see at each step.
func TestSeed(t *testing.T) {
	registryConfig := startMirror(t, requireEnv(t, "SKIFF_IMAGES"))
	n := newNode(t, registryConfig)
	n.start()

	t.Run("create logs the seed's requests and defaults", func(t *testing.T) { checkSeedCreate(t, n) })
	t.Run("two pods Running and answering", func(t *testing.T) {
		pods := waitRunning(t, n, 2)
		checkPodYAML(t, n, pods[0].Name)
		for _, pod := range pods {
			curlNginx(t, pod.Status.PodIP)
		}
		checkLogs(t, n, pods[0].Name)
		// exec goes apiserver → kubelet API → CRI streaming: the pod's hostname is its name.
		if out := strings.TrimSpace(n.kubectl("exec", pods[0].Name, "--", "cat", "/etc/hostname")); out != pods[0].Name {
			t.Errorf("kubectl exec %s -- cat /etc/hostname = %q", pods[0].Name, out)
		}
	})
	t.Run("etcd holds protobuf", func(t *testing.T) { checkEtcdEnvelope(t, n) })
	t.Run("invalid input is rejected naming the field", func(t *testing.T) { checkInvalid(t, n) })
	t.Run("missing image shows ErrImagePull", func(t *testing.T) { checkMissingImage(t, n) })
	t.Run("scale and replace", func(t *testing.T) {
		n.kubectl("scale", "rs", "my-replicaset", "--replicas=3")
		pods := waitRunning(t, n, 3)
		n.kubectl("delete", "pod", pods[0].Name)
		replaced := waitRunning(t, n, 3)
		for _, pod := range replaced {
			if pod.Name == pods[0].Name {
				t.Errorf("deleted pod %s is still listed", pod.Name)
			}
		}
	})
	t.Run("restart keeps pods running", func(t *testing.T) { checkRestart(t, n) })
	t.Run("delete removes everything", func(t *testing.T) { checkDelete(t, n) })
}

func checkSeedCreate(t *testing.T, n *node) {
	_, log, err := n.kubectlQuiet("create", "-f", "testdata/replicaset.yaml", "-v", "10")
	if err != nil {
		t.Fatalf("kubectl create: %v\n%s", err, lastLines(log, 60))
	}
	base := fmt.Sprintf("https://127.0.0.1:%d", n.apiPort)
	for _, want := range []string{
		"GET " + base + "/openapi/v3?timeout=32s 200 OK",
		"GET " + base + "/openapi/v3/apis/apps/v1?hash=",
		"POST " + base + "/apis/apps/v1/namespaces/default/replicasets?fieldManager=kubectl-create&fieldValidation=Strict 201 Created",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("kubectl -v 10 log lacks %q", want)
		}
	}
	rs := postResponseBody(t, log)
	c := rs.Spec.Template.Spec.Containers[0]
	spec := rs.Spec.Template.Spec
	checks := []struct {
		field     string
		got, want any
	}{
		{"imagePullPolicy", c.ImagePullPolicy, corev1.PullAlways},
		{"terminationMessagePath", c.TerminationMessagePath, "/dev/termination-log"},
		{"terminationMessagePolicy", c.TerminationMessagePolicy, corev1.TerminationMessageReadFile},
		{"ports[0].protocol", c.Ports[0].Protocol, corev1.ProtocolTCP},
		{"restartPolicy", spec.RestartPolicy, corev1.RestartPolicyAlways},
		{"terminationGracePeriodSeconds", deref(spec.TerminationGracePeriodSeconds), int64(30)},
		{"dnsPolicy", spec.DNSPolicy, corev1.DNSClusterFirst},
		{"schedulerName", spec.SchedulerName, "default-scheduler"},
		{"status.replicas", rs.Status.Replicas, int32(0)},
		{"metadata.generation", rs.Generation, int64(1)},
	}
	for _, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("201 body: %s = %v, want %v", c.field, c.got, c.want)
		}
	}
	if rs.UID == "" || rs.ResourceVersion == "" || rs.CreationTimestamp.IsZero() {
		t.Errorf("201 body lacks uid/resourceVersion/creationTimestamp: %+v", rs.ObjectMeta)
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// postResponseBody finds the body kubectl -v 10 logged for the POST's response. klog
// prints a long value on its own lines: `"Response Body" body=<`, the JSON, ` >`.
func postResponseBody(t *testing.T, log string) appsv1.ReplicaSet {
	t.Helper()
	afterPost := log[strings.Index(log, "POST https://"):]
	match := regexp.MustCompile(`"Response Body" body=<\n\s*(\{.*\})\n`).FindStringSubmatch(afterPost)
	if match == nil {
		t.Fatalf("no response body after the POST in the kubectl log")
	}
	var rs appsv1.ReplicaSet
	if err := json.Unmarshal([]byte(match[1]), &rs); err != nil {
		t.Fatalf("decoding the response body %q: %v", match[1], err)
	}
	return rs
}

// waitRunning waits until exactly want pods of the seed's ReplicaSet are listed, all
// `1/1 Running` in kubectl's table, and returns them.
func waitRunning(t *testing.T, n *node, want int) []corev1.Pod {
	t.Helper()
	row := regexp.MustCompile(`(?m)^my-replicaset-[a-z0-9]{5}\s+1/1\s+Running\s`)
	var table string
	n.waitFor(fmt.Sprintf("%d pods 1/1 Running", want), 3*time.Minute, func() (bool, error) {
		var err error
		table, _, err = n.kubectlQuiet("get", "pod", "-l", seedSelector)
		if err != nil {
			return false, err
		}
		lines := strings.Count(strings.TrimSpace(table), "\n") // header excluded
		return len(row.FindAllString(table, -1)) == want && lines == want, nil
	})
	pods := n.pods(seedSelector)
	for _, pod := range pods {
		if pod.Status.PodIP == "" {
			t.Fatalf("pod %s is Running without a podIP", pod.Name)
		}
	}
	return pods
}

func checkPodYAML(t *testing.T, n *node, name string) {
	out := n.kubectl("get", "pod", name, "-o", "yaml")
	rs := n.kubectl("get", "rs", "my-replicaset", "-o", "jsonpath={.metadata.uid}")
	for _, want := range []string{
		"generateName: my-replicaset-",
		"blockOwnerDeletion: true",
		"controller: true",
		"kind: ReplicaSet",
		"uid: " + rs,
		"nodeName: " + n.name,
		"podIP: ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl get pod %s -o yaml lacks %q:\n%s", name, want, out)
		}
	}
}

func curlNginx(t *testing.T, ip string) {
	t.Helper()
	var out []byte
	var err error
	for range 20 {
		out, err = exec.Command("curl", "-sS", "--max-time", "5", "http://"+ip+"/").CombinedOutput()
		if err == nil {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err != nil || !bytes.Contains(out, []byte("Welcome to nginx")) {
		t.Errorf("curl http://%s/: %v\n%s", ip, err, out)
	}
}

// checkLogs reads nginx's access log line for the curl through `kubectl logs`, which the
// apiserver proxies to the agent's kubelet API.
func checkLogs(t *testing.T, n *node, pod string) {
	t.Helper()
	var out, errOut string
	var err error
	for range 20 {
		out, errOut, err = n.kubectlQuiet("logs", pod)
		if err == nil && strings.Contains(out, `"GET / HTTP/1.1" 200`) {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Errorf("kubectl logs %s: %v\nstdout: %s\nstderr: %s", pod, err, out, errOut)
}

func checkEtcdEnvelope(t *testing.T, n *node) {
	cmd := exec.Command("etcdctl", "--endpoints", fmt.Sprintf("127.0.0.1:%d", n.etcdPort),
		"get", "/registry/replicasets/default/my-replicaset", "-w", "json")
	cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("etcdctl get: %v", err)
	}
	var resp struct {
		KVs []struct {
			Value string `json:"value"`
		} `json:"kvs"`
	}
	if err := json.Unmarshal(out, &resp); err != nil || len(resp.KVs) != 1 {
		t.Fatalf("etcdctl output %s: %v", out, err)
	}
	value, err := base64.StdEncoding.DecodeString(resp.KVs[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(value, []byte("k8s\x00")) {
		t.Errorf("stored value starts with %q, want k8s\\x00", value[:min(8, len(value))])
	}
}

func checkInvalid(t *testing.T, n *node) {
	seed, err := os.ReadFile("testdata/replicaset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, from, to, field string
	}{
		{"negative replicas", "replicas: 2", "replicas: -1", "spec.replicas: Invalid value: -1"},
		{"selector mismatch", "app: my-app  # 与 Pod 的标签匹配", "app: other", "spec.template.metadata.labels: Invalid value"},
		{"empty image", "image: nginx", `image: ""`, "spec.template.spec.containers[0].image: Required value"},
	}
	for _, c := range cases {
		manifest := strings.Replace(strings.Replace(string(seed), "my-replicaset", "bad-replicaset", 1), c.from, c.to, 1)
		path := filepath.Join(t.TempDir(), "rs.yaml")
		if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
			t.Fatal(err)
		}
		_, errOut, err := n.kubectlQuiet("create", "-f", path, "-v", "6")
		if err == nil {
			t.Errorf("%s: kubectl create succeeded", c.name)
			n.kubectlQuiet("delete", "rs", "bad-replicaset")
			continue
		}
		if !strings.Contains(errOut, "422 Unprocessable Entity") || !strings.Contains(errOut, c.field) {
			t.Errorf("%s: want a 422 naming %q, got:\n%s", c.name, c.field, lastLines(errOut, 5))
		}
	}
}

func checkMissingImage(t *testing.T, n *node) {
	n.kubectl("run", "missing-image", "--image=docker.io/library/does-not-exist:v1", "--restart=Never")
	defer n.kubectl("delete", "pod", "missing-image", "--grace-period=0")
	n.waitFor("ErrImagePull", 2*time.Minute, func() (bool, error) {
		var pod corev1.Pod
		out, _, err := n.kubectlQuiet("get", "pod", "missing-image", "-o", "json")
		if err != nil {
			return false, err
		}
		if err := json.Unmarshal([]byte(out), &pod); err != nil {
			return false, err
		}
		for _, cs := range pod.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil && (w.Reason == "ErrImagePull" || w.Reason == "ImagePullBackOff") {
				if w.Message == "" {
					return false, fmt.Errorf("%s without a message", w.Reason)
				}
				return true, nil
			}
		}
		return false, nil
	})
	for _, pod := range n.pods(seedSelector) {
		curlNginx(t, pod.Status.PodIP)
	}
}

func containerIDs(pods []corev1.Pod) map[string]string {
	ids := map[string]string{}
	for _, pod := range pods {
		for _, cs := range pod.Status.ContainerStatuses {
			ids[pod.Name] = fmt.Sprintf("%s restarts=%d", cs.ContainerID, cs.RestartCount)
		}
	}
	return ids
}

func checkRestart(t *testing.T, n *node) {
	before := containerIDs(waitRunning(t, n, 3))
	n.stop()
	n.start()
	after := containerIDs(waitRunning(t, n, 3))
	for name, was := range before {
		if after[name] != was {
			t.Errorf("pod %s: container %q before the restart, %q after", name, was, after[name])
		}
	}
	for _, pod := range n.pods(seedSelector) {
		curlNginx(t, pod.Status.PodIP)
	}
}

func checkDelete(t *testing.T, n *node) {
	n.kubectl("delete", "rs", "my-replicaset")
	n.waitFor("pods gone", 2*time.Minute, func() (bool, error) {
		out, _, err := n.kubectlQuiet("get", "pods", "-l", seedSelector, "-o", "name")
		return err == nil && strings.TrimSpace(out) == "", err
	})
	crictl := requireEnv(t, "CRICTL")
	endpoint := "unix://" + filepath.Join(n.runDir, "cri.sock")
	n.waitFor("no sandboxes or containers left", time.Minute, func() (bool, error) {
		for _, verb := range [][]string{{"pods", "-q"}, {"ps", "-a", "-q"}} {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			out, err := exec.CommandContext(ctx, crictl, append([]string{"--runtime-endpoint", endpoint}, verb...)...).Output()
			cancel()
			if err != nil {
				return false, fmt.Errorf("crictl %v: %w", verb, err)
			}
			if strings.TrimSpace(string(out)) != "" {
				return false, fmt.Errorf("crictl %v lists %s", verb, out)
			}
		}
		return true, nil
	})
	if leaked := allocatedIPs(t, filepath.Join(n.dataDir, "network")); len(leaked) > 0 {
		t.Errorf("IPs still allocated after every pod is gone: %v", leaked)
	}
}

// allocatedIPs lists host-local IPAM reservations (files named after an IP) under dir.
func allocatedIPs(t *testing.T, dir string) []string {
	var ips []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && net.ParseIP(d.Name()) != nil {
			ips = append(ips, d.Name())
		}
		return nil
	})
	if err != nil {
		t.Errorf("walking %s: %v", dir, err)
	}
	return ips
}
