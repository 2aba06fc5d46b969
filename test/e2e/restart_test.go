//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	restartPodCount = 10
	restartLabel    = "skiff-e2e=restart"
	// nginx's default site serves / from this page; without it / answers 403.
	nginxIndexPage = "/var/www/html/index.nginx-debian.html"
)

// TestRestart kills `skiff up` with SIGKILL and starts it again on the same data dir, as
// a crash or an upgrade would: the running pods must not notice. The child containerd
// and its shims live in their own process group, so they outlive skiff and the new one
// adopts them. Checked: the same containers with the same restart counts, no Ready=False
// seen by a watch at any moment, nginx still answering, and probes running again (a
// page removed after the restart turns exactly that pod unready).
func TestRestart(t *testing.T) {
	registryConfig := startMirror(t, requireEnv(t, "SKIFF_IMAGES"))
	n := newNode(t, registryConfig)
	n.start()
	client := adminClient(t, n)

	names := createRestartPods(t, n)
	before := waitAllReady(t, client, names, 3*time.Minute)

	ctx, cancel := context.WithCancel(context.Background())
	rec := newReadyRecorder()
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); rec.watch(ctx, t, client) }()
	t.Cleanup(func() { cancel(); <-watchDone })
	rec.waitSynced(t, 30*time.Second)

	watchesBefore := rec.watches()
	killedAt := time.Now()
	killAndRestart(t, n)
	t.Logf("skiff up killed and its new agent started after %v", time.Since(killedAt).Round(time.Millisecond))
	// The watch reconnects to the new apiserver; give it, and the new agent's first status
	// round and probes, time to show any flap.
	rec.waitReconnected(t, watchesBefore, time.Minute)
	time.Sleep(10 * time.Second)

	after := waitAllReady(t, client, names, 30*time.Second)
	for _, name := range names {
		b, a := firstContainer(before[name]), firstContainer(after[name])
		if a.ContainerID != b.ContainerID || a.RestartCount != b.RestartCount {
			t.Errorf("pod %s: container %s restarts %d before, %s restarts %d after", name, b.ContainerID, b.RestartCount, a.ContainerID, a.RestartCount)
		}
		if a.State.Running == nil || !a.State.Running.StartedAt.Equal(&b.State.Running.StartedAt) {
			t.Errorf("pod %s: container state %s after restart, want running since %v", name, mustJSON(a.State), b.State.Running.StartedAt)
		}
		if body, err := httpGet(after[name].Status.PodIP); err != nil || !strings.Contains(body, "Welcome to nginx!") {
			t.Errorf("pod %s at %s no longer serves nginx: %v", name, after[name].Status.PodIP, err)
		}
	}
	if flaps := rec.notReady(); len(flaps) > 0 {
		t.Errorf("the watch saw Ready leave True during the restart:\n%s", strings.Join(flaps, "\n"))
	}

	// Probes run again: break one pod's readiness; it alone turns unready.
	broken := names[0]
	kc(t, n, "exec", broken, "--", "rm", nginxIndexPage)
	waitPod(t, n, broken, "Ready=False after its page is removed", 30*time.Second, func(p corev1.Pod) bool {
		c := podCondition(&p, corev1.PodReady)
		return c != nil && c.Status == corev1.ConditionFalse && !firstContainer(p).Ready
	})
	waitEvent(t, n, broken, "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 403", 10*time.Second)
	time.Sleep(3 * time.Second)
	for _, name := range names[1:] {
		if p := getPod(t, n, name); !podReady(&p) {
			t.Errorf("pod %s not Ready, only %s lost its page: %s", name, broken, mustJSON(p.Status))
		}
	}
	t.Logf("Ready transitions the watch saw: %v", rec.all())
	if flaps := rec.notReady(); len(flaps) != 1 || !strings.HasPrefix(flaps[0], broken+" ") {
		t.Errorf("want one Ready=False transition, for %s; the watch saw:\n%s", broken, strings.Join(flaps, "\n"))
	}
}

func adminClient(t *testing.T, n *node) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", n.kubecfg)
	if err != nil {
		t.Fatal(err)
	}
	return kubernetes.NewForConfigOrDie(cfg)
}

func createRestartPods(t *testing.T, n *node) []string {
	t.Helper()
	var manifest strings.Builder
	var names []string
	for i := range restartPodCount {
		name := fmt.Sprintf("restart-%d", i)
		names = append(names, name)
		fmt.Fprintf(&manifest, `---
apiVersion: v1
kind: Pod
metadata:
  name: %s
  labels: {skiff-e2e: restart}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: nginx
    readinessProbe:
      httpGet: {path: /, port: 80}
      periodSeconds: 1
`, name)
	}
	applyYAML(t, n, manifest.String())
	return names
}

// waitAllReady waits until every named pod is Ready and returns them.
func waitAllReady(t *testing.T, client kubernetes.Interface, names []string, timeout time.Duration) map[string]corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		list, err := client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: restartLabel})
		pods := map[string]corev1.Pod{}
		if err == nil {
			for _, p := range list.Items {
				if podReady(&p) && p.Status.PodIP != "" && firstContainer(p).State.Running != nil {
					pods[p.Name] = p
				}
			}
			if len(pods) == len(names) {
				return pods
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d pods Ready after %v (last error: %v)", len(pods), len(names), timeout, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func podReady(p *corev1.Pod) bool {
	c := podCondition(p, corev1.PodReady)
	return c != nil && c.Status == corev1.ConditionTrue
}

// killAndRestart sends SIGKILL to the `skiff up` process only (not its process group,
// which would take containerd's children with it if they shared it) and starts a new
// one on the same data dir; the new one must adopt the old containerd.
func killAndRestart(t *testing.T, n *node) {
	t.Helper()
	if err := n.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill -9 skiff up: %v", err)
	}
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		t.Fatal("skiff up did not die from SIGKILL")
	}
	n.cmd = nil
	logBefore, err := os.ReadFile(n.logPath)
	if err != nil {
		t.Fatal(err)
	}
	n.start()
	// The node was Ready in etcd before the kill; wait for the new agent itself.
	newLog := func() string {
		data, err := os.ReadFile(n.logPath)
		if err != nil {
			t.Fatal(err)
		}
		return string(data[len(logBefore):])
	}
	n.waitFor("the new agent", time.Minute, func() (bool, error) { return strings.Contains(newLog(), "Agent started"), nil })
	if !strings.Contains(newLog(), "Adopted running containerd") {
		t.Errorf("the restarted skiff did not adopt the running containerd")
	}
}

func httpGet(ip string) (string, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + ip + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(body), fmt.Errorf("status %s", resp.Status)
	}
	return string(body), err
}

// readyRecorder watches the test's pods across apiserver restarts and records every
// change of their Ready condition.
type readyRecorder struct {
	mu          sync.Mutex
	last        map[string]corev1.ConditionStatus
	transitions []string // "pod True->False at rv"
	synced      bool
	reconnects  int // watches opened
}

func newReadyRecorder() *readyRecorder {
	return &readyRecorder{last: map[string]corev1.ConditionStatus{}}
}

// watch lists once, then watches from the list's resourceVersion, resuming from the last
// event seen whenever the connection drops (the apiserver is gone while skiff restarts),
// so no event in between is missed; it relists only if that version is gone.
func (r *readyRecorder) watch(ctx context.Context, t *testing.T, client kubernetes.Interface) {
	pods := client.CoreV1().Pods("default")
	rv := ""
	for ctx.Err() == nil {
		if rv == "" {
			list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: restartLabel})
			if err != nil {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			for i := range list.Items {
				r.observe(&list.Items[i], list.ResourceVersion)
			}
			rv = list.ResourceVersion
			r.mu.Lock()
			r.synced = true
			r.mu.Unlock()
		}
		w, err := pods.Watch(ctx, metav1.ListOptions{LabelSelector: restartLabel, ResourceVersion: rv, AllowWatchBookmarks: true})
		if err != nil {
			if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
				t.Logf("watch: resourceVersion %s is gone; relisting", rv)
				rv = ""
			}
			time.Sleep(200 * time.Millisecond)
			continue
		}
		r.mu.Lock()
		r.reconnects++
		r.mu.Unlock()
		rv = r.drain(w, rv)
		w.Stop()
	}
}

// drain records the watch's events and returns the last resourceVersion seen, or ""
// when the apiserver says it is too old to resume from.
func (r *readyRecorder) drain(w watch.Interface, rv string) string {
	for ev := range w.ResultChan() {
		switch ev.Type {
		case watch.Error:
			if status := apierrors.FromObject(ev.Object); apierrors.IsResourceExpired(status) || apierrors.IsGone(status) {
				return ""
			}
			return rv
		case watch.Added, watch.Modified, watch.Bookmark:
			pod, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			rv = pod.ResourceVersion
			if ev.Type != watch.Bookmark {
				r.observe(pod, rv)
			}
		case watch.Deleted:
			if pod, ok := ev.Object.(*corev1.Pod); ok {
				rv = pod.ResourceVersion
			}
		}
	}
	return rv
}

func (r *readyRecorder) observe(pod *corev1.Pod, rv string) {
	status := corev1.ConditionUnknown
	if c := podCondition(pod, corev1.PodReady); c != nil {
		status = c.Status
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev, seen := r.last[pod.Name]; seen && prev != status {
		r.transitions = append(r.transitions, fmt.Sprintf("%s %s->%s at rv %s", pod.Name, prev, status, rv))
	}
	r.last[pod.Name] = status
}

func (r *readyRecorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.transitions)
}

// notReady lists the transitions away from Ready=True.
func (r *readyRecorder) notReady() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, tr := range r.transitions {
		if strings.Contains(tr, " True->") {
			out = append(out, tr)
		}
	}
	return out
}

func (r *readyRecorder) waitSynced(t *testing.T, timeout time.Duration) {
	t.Helper()
	r.waitUntil(t, timeout, "the pod watch to start", func() bool { return r.synced && r.reconnects > 0 })
}

func (r *readyRecorder) watches() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reconnects
}

// waitReconnected waits for a watch opened after the one the restart broke.
func (r *readyRecorder) waitReconnected(t *testing.T, before int, timeout time.Duration) {
	t.Helper()
	r.waitUntil(t, timeout, "the pod watch to reconnect", func() bool { return r.reconnects > before })
}

func (r *readyRecorder) waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		ok := cond()
		r.mu.Unlock()
		if ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal(errors.New("timed out waiting for " + what))
}
