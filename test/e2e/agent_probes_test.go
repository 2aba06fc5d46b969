//go:build e2e

package e2e

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// checkLivenessRestart: nginx with a liveness probe on a path it does not serve is
// restarted, with Unhealthy events.
func checkLivenessRestart(t *testing.T, n *node) {
	applyYAML(t, n, `apiVersion: v1
kind: Pod
metadata:
  name: liveness
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: nginx
    livenessProbe:
      httpGet: {path: /healthz, port: 80}
      periodSeconds: 1
      failureThreshold: 2
`)
	waitPod(t, n, "liveness", "a restart", 2*time.Minute, func(p corev1.Pod) bool { return firstContainer(p).RestartCount >= 1 })
	waitEvent(t, n, "liveness", "Unhealthy", "Liveness probe failed: HTTP probe failed with statuscode: 404", 10*time.Second)
	waitEvent(t, n, "liveness", "Killing", "Container web failed liveness probe, will be restarted", 10*time.Second)
}

// checkReadinessGate: a container whose readiness probe fails until a file exists is
// Running but not Ready; once the container creates the file the pod turns Ready.
func checkReadinessGate(t *testing.T, n *node) {
	applyYAML(t, n, `apiVersion: v1
kind: Pod
metadata:
  name: readiness
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: nginx
    command: ["sh", "-c", "sleep 8; touch /tmp/ready; exec sleep 3600"]
    readinessProbe:
      exec: {command: ["cat", "/tmp/ready"]}
      periodSeconds: 1
`)
	pod := waitPod(t, n, "readiness", "Running", 2*time.Minute, func(p corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	time.Sleep(2 * time.Second) // a few probe periods, before the file exists
	pod = getPod(t, n, "readiness")
	if c := podCondition(&pod, corev1.PodReady); c == nil || c.Status != corev1.ConditionFalse || firstContainer(pod).Ready {
		t.Fatalf("pod Ready before its probe passed: %s", mustJSON(pod.Status))
	}
	waitPod(t, n, "readiness", "Ready", 30*time.Second, func(p corev1.Pod) bool {
		c := podCondition(&p, corev1.PodReady)
		return c != nil && c.Status == corev1.ConditionTrue && firstContainer(p).Ready
	})
}
