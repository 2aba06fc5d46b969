package agent

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
)

const (
	eventFailedPostStartHook  = "FailedPostStartHook"
	eventFailedPreStopHook    = "FailedPreStopHook"
	reasonPostStartHookError  = "PostStartHookError"
	killReasonPostStartFailed = "FailedPostStartHook"
	// minGracePeriod is what StopContainer gets at least after a preStop hook used up the
	// grace period (kubelet's minimumGracePeriodInSeconds).
	minGracePeriod = 2
)

// hookTarget is the container instance a lifecycle hook runs against.
type hookTarget struct {
	pod         *v1.Pod
	container   *v1.Container
	containerID string
	podIP       string
}

// runHook runs a lifecycle handler (exec, httpGet or sleep) and returns kubelet's message
// for the event when it fails. timeout bounds an exec; 0 means none.
func (a *Agent) runHook(ctx context.Context, t hookTarget, h *v1.LifecycleHandler, timeout time.Duration) (string, error) {
	switch {
	case h.Exec != nil:
		stdout, stderr, err := a.cfg.Runtime.ExecSync(ctx, t.containerID, h.Exec.Command, timeout)
		if err != nil {
			return fmt.Sprintf("Exec lifecycle hook (%v) for Container %q in Pod %q failed - error: %v, message: %q",
				h.Exec.Command, t.container.Name, podDesc(t.pod), err, string(stdout)+string(stderr)), err
		}
		return "", nil
	case h.HTTPGet != nil:
		if err := hookHTTPGet(ctx, t, h.HTTPGet); err != nil {
			return fmt.Sprintf("HTTP lifecycle hook (%s) for Container %q in Pod %q failed - error: %v",
				h.HTTPGet.Path, t.container.Name, podDesc(t.pod), err), err
		}
		return "", nil
	case h.Sleep != nil:
		timer := time.NewTimer(time.Duration(h.Sleep.Seconds) * time.Second)
		defer timer.Stop()
		select {
		case <-ctx.Done(): // the grace period ran out first: not a failure of the hook
		case <-timer.C:
		}
		return "", nil
	}
	err := fmt.Errorf("lifecycle hook for container %q has no supported handler", t.container.Name)
	return err.Error(), err
}

// hookHTTPGet sends the hook's GET. As with kubelet, any answer counts as success: only a
// request that cannot be made fails the hook.
func hookHTTPGet(ctx context.Context, t hookTarget, g *v1.HTTPGetAction) error {
	u, err := httpActionURL(g, t.container, t.podIP)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	for _, h := range g.HTTPHeaders {
		req.Header.Add(h.Name, h.Value)
	}
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
	return resp.Body.Close()
}

// runPostStart runs the container's postStart hook right after it started. On failure the
// container is killed, as kubelet does, and the returned message explains why.
func (a *Agent) runPostStart(ctx context.Context, t hookTarget, grace int64) (string, bool) {
	lc := t.container.Lifecycle
	if lc == nil || lc.PostStart == nil {
		return "", true
	}
	msg, err := a.runHook(ctx, t, lc.PostStart, 0)
	if err == nil {
		return "", true
	}
	klog.FromContext(ctx).Info("PostStart hook failed", "pod", klog.KObj(t.pod), "container", t.container.Name, "err", err)
	ref := containerRef(t.pod, t.container.Name)
	a.recorder.Event(ref, v1.EventTypeWarning, eventFailedPostStartHook, msg)
	a.recorder.Event(ref, v1.EventTypeNormal, eventKilling, killReasonPostStartFailed)
	if err := a.cfg.Runtime.StopContainer(ctx, t.containerID, grace); err != nil && !isNotFound(err) {
		klog.FromContext(ctx).Error(err, "Stopping container after its postStart hook failed", "id", t.containerID)
	}
	return msg, false
}

// runPreStop runs the preStop hook, bounded by the grace period, and returns the grace
// left for StopContainer (never below minGracePeriod, as with kubelet).
func (a *Agent) runPreStop(ctx context.Context, t hookTarget, grace int64) int64 {
	lc := t.container.Lifecycle
	if lc == nil || lc.PreStop == nil || grace <= 0 {
		return grace
	}
	start := time.Now()
	hookCtx, cancel := context.WithTimeout(ctx, time.Duration(grace)*time.Second)
	defer cancel()
	msg, err := a.runHook(hookCtx, t, lc.PreStop, time.Duration(grace)*time.Second)
	if err != nil && hookCtx.Err() == nil {
		a.recorder.Event(containerRef(t.pod, t.container.Name), v1.EventTypeWarning, eventFailedPreStopHook, msg)
	}
	klog.FromContext(ctx).V(2).Info("PreStop hook done", "pod", klog.KObj(t.pod), "container", t.container.Name,
		"elapsed", time.Since(start), "err", err)
	left := grace - int64(time.Since(start)/time.Second)
	return max(left, minGracePeriod)
}
