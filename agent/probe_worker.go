package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/klog/v2"
)

// maxProbeOutput bounds what a failed probe's event quotes.
const maxProbeOutput = 1024

// probeWorker runs one probe of one container instance until stopped.
type probeWorker struct {
	p           *prober
	key         probeKey
	pod         *v1.Pod
	container   *v1.Container
	spec        *v1.Probe
	containerID string
	startedAt   time.Time
	podIP       string
	done        chan struct{}
	stopOnce    func()
}

func newProbeWorker(p *prober, key probeKey, pod *v1.Pod, c *v1.Container, spec *v1.Probe, id string, startedAt time.Time, podIP string) *probeWorker {
	w := &probeWorker{p: p, key: key, pod: pod, container: c, spec: spec, containerID: id, startedAt: startedAt, podIP: podIP, done: make(chan struct{})}
	closed := false
	w.stopOnce = func() {
		if !closed {
			closed = true
			close(w.done)
		}
	}
	return w
}

// stop is called with prober.mu held, which also serialises stopOnce.
func (w *probeWorker) stop() { w.stopOnce() }

func (w *probeWorker) run(ctx context.Context) {
	period := secondsOr(w.spec.PeriodSeconds, 10)
	successThreshold := int(max(w.spec.SuccessThreshold, 1))
	failureThreshold := 3
	if w.spec.FailureThreshold > 0 {
		failureThreshold = int(w.spec.FailureThreshold)
	}
	delay := time.Until(w.startedAt.Add(time.Duration(w.spec.InitialDelaySeconds) * time.Second))
	if !w.sleep(ctx, delay) {
		return
	}
	successes, failures := 0, 0
	// Liveness assumes success until it fails; the others start from what the prober
	// knows of this instance (a verdict carried over an agent restart), or failure.
	last, _ := w.p.result(w.key.uid, w.key.container, w.key.kind, w.containerID)
	last = last || w.key.kind == probeLiveness
	for {
		err := w.probeOnce(ctx)
		if err == nil {
			successes, failures = successes+1, 0
		} else {
			successes, failures = 0, failures+1
			klog.FromContext(ctx).V(2).Info("Probe failed", "pod", klog.KObj(w.pod), "err", err)
			w.p.recorder.Eventf(containerRef(w.pod, w.container.Name), v1.EventTypeWarning, "Unhealthy",
				"%s probe failed: %s", w.key.kind, truncate(err.Error(), maxProbeOutput))
		}
		switch {
		case successes >= successThreshold:
			last = true
		case failures >= failureThreshold:
			last = false
		}
		if successes >= successThreshold || failures >= failureThreshold || w.key.kind == probeReadiness {
			w.p.set(w.key, probeResult{containerID: w.containerID, ok: last})
		}
		// A startup probe is done once it succeeds; a failed liveness or startup verdict
		// ends this container instance anyway.
		if (w.key.kind == probeStartup && last) || (w.key.kind != probeReadiness && !last) {
			return
		}
		if !w.sleep(ctx, period) {
			return
		}
	}
}

func (w *probeWorker) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		d = 0
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-w.done:
		return false
	case <-t.C:
		return true
	}
}

// probeOnce runs the handler once; nil means success.
func (w *probeWorker) probeOnce(ctx context.Context) error {
	timeout := secondsOr(w.spec.TimeoutSeconds, 1)
	h := w.spec.ProbeHandler
	switch {
	case h.Exec != nil:
		stdout, stderr, err := w.p.runtime.ExecSync(ctx, w.containerID, h.Exec.Command, timeout)
		if err != nil {
			out := strings.TrimSpace(string(stdout) + string(stderr))
			if out != "" {
				return fmt.Errorf("%s", out)
			}
			return fmt.Errorf("command %q failed: %w", h.Exec.Command, err)
		}
		return nil
	case h.HTTPGet != nil:
		return w.probeHTTP(ctx, h.HTTPGet, timeout)
	case h.TCPSocket != nil:
		port, err := resolvePort(h.TCPSocket.Port, w.container)
		if err != nil {
			return err
		}
		host := h.TCPSocket.Host
		if host == "" {
			host = w.podIP
		}
		conn, err := (&net.Dialer{Timeout: timeout}).DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return err // already says "dial tcp host:port: ..."
		}
		return conn.Close()
	case h.GRPC != nil:
		return probeGRPC(ctx, h.GRPC, w.podIP, timeout)
	}
	return errors.New("probe has no handler")
}

func (w *probeWorker) probeHTTP(ctx context.Context, g *v1.HTTPGetAction, timeout time.Duration) error {
	u, err := httpActionURL(g, w.container, w.podIP)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "kube-probe/1.37")
	for _, h := range g.HTTPHeaders {
		req.Header.Add(h.Name, h.Value)
	}
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // like kubelet: probes do not verify
		DisableKeepAlives: true,
	}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("Get %q: %w", u.String(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("HTTP probe failed with statuscode: %d", resp.StatusCode)
	}
	return nil
}

// resolvePort turns a probe port (number or container port name) into a number.
func resolvePort(p intstr.IntOrString, c *v1.Container) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil {
		return n, nil
	}
	return 0, errors.New("no container port named " + p.StrVal)
}

func secondsOr(s, def int32) time.Duration {
	if s <= 0 {
		s = def
	}
	return time.Duration(s) * time.Second
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
