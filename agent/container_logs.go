package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// followPoll is how often a followed log is checked for new lines.
const followPoll = 250 * time.Millisecond

// logOptions are the query parameters of GET /containerLogs (kubectl logs).
type logOptions struct {
	follow, previous, timestamps bool
	tailLines                    int64 // -1: all
	limitBytes                   int64 // 0: no limit
	since                        time.Time
}

func parseLogOptions(r *http.Request) (logOptions, error) {
	q := r.URL.Query()
	o := logOptions{follow: boolParam(q, "follow"), previous: boolParam(q, "previous"), timestamps: boolParam(q, "timestamps"), tailLines: -1}
	var err error
	if v := q.Get("tailLines"); v != "" {
		if o.tailLines, err = strconv.ParseInt(v, 10, 64); err != nil || o.tailLines < 0 {
			return o, fmt.Errorf("bad tailLines %q", v)
		}
	}
	if v := q.Get("limitBytes"); v != "" {
		if o.limitBytes, err = strconv.ParseInt(v, 10, 64); err != nil || o.limitBytes <= 0 {
			return o, fmt.Errorf("bad limitBytes %q", v)
		}
	}
	if v := q.Get("sinceSeconds"); v != "" {
		s, err := strconv.ParseInt(v, 10, 64)
		if err != nil || s <= 0 {
			return o, fmt.Errorf("bad sinceSeconds %q", v)
		}
		o.since = time.Now().Add(-time.Duration(s) * time.Second)
	}
	if v := q.Get("sinceTime"); v != "" {
		if o.since, err = time.Parse(time.RFC3339, v); err != nil {
			return o, fmt.Errorf("bad sinceTime %q", v)
		}
	}
	return o, nil
}

func (a *Agent) serveContainerLogs(w http.ResponseWriter, r *http.Request) {
	opts, err := parseLogOptions(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	pod, rp, code, err := a.lookupPod(r)
	if err != nil {
		http.Error(w, err.Error(), code)
		return
	}
	c, err := a.logContainer(pod, rp, r.PathValue("container"), opts.previous)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	path := c.GetLogPath()
	if !filepath.IsAbs(path) {
		path = filepath.Join(a.podLogDir(pod), c.GetMetadata().GetName(), strconv.Itoa(restartCountOf(c))+".log")
	}
	w.Header().Set("Content-Type", "text/plain")
	out := &flushWriter{w: w}
	if opts.limitBytes > 0 {
		out.limit = opts.limitBytes
	}
	running := func(ctx context.Context) bool {
		st, err := a.cfg.Runtime.ContainerStatus(ctx, c.Id, false)
		return err == nil && st.GetStatus().GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING
	}
	if err := copyCRILog(r.Context(), path, out, opts, running); err != nil && !errors.Is(err, errLimitReached) {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

// logContainer picks the container instance whose log kubectl wants, from the status
// kubectl sees (as kubelet's validateContainerLogStatus does).
func (a *Agent) logContainer(pod *v1.Pod, rp *runtimePod, name string, previous bool) (*runtimeapi.ContainerStatus, error) {
	var cs *v1.ContainerStatus
	for _, list := range [][]v1.ContainerStatus{pod.Status.ContainerStatuses, pod.Status.InitContainerStatuses} {
		for i := range list {
			if list[i].Name == name {
				cs = &list[i]
			}
		}
	}
	if cs == nil {
		return nil, fmt.Errorf("container %q in pod %q is not available", name, pod.Name)
	}
	var id string
	switch {
	case previous:
		if cs.LastTerminationState.Terminated == nil {
			return nil, fmt.Errorf("previous terminated container %q in pod %q not found", name, pod.Name)
		}
		id = cs.LastTerminationState.Terminated.ContainerID
	case cs.State.Running != nil:
		id = cs.ContainerID
	case cs.State.Terminated != nil:
		id = cs.State.Terminated.ContainerID
	case cs.LastTerminationState.Terminated != nil:
		id = cs.LastTerminationState.Terminated.ContainerID
	default:
		reason := ""
		if cs.State.Waiting != nil {
			reason = cs.State.Waiting.Reason
		}
		return nil, fmt.Errorf("container %q in pod %q is waiting to start: %s", name, pod.Name, reason)
	}
	if _, after, ok := strings.Cut(id, "://"); ok {
		id = after
	}
	for _, c := range rp.containers {
		if c.Id == id {
			return c, nil
		}
	}
	return nil, fmt.Errorf("container %q in pod %q: instance %s is gone", name, pod.Name, id)
}

// copyCRILog writes a CRI-format log as the container's plain output. With follow it
// keeps reading until the container stops or the request ends.
func copyCRILog(ctx context.Context, path string, out *flushWriter, o logOptions, running func(context.Context) bool) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	var next *os.File // the file that replaced f after a rotation, once f is drained
	defer func() {
		f.Close()
		if next != nil {
			next.Close()
		}
	}()
	if o.tailLines >= 0 {
		off, err := tailOffset(f, o.tailLines)
		if err != nil {
			return err
		}
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return err
		}
	}
	rd := bufio.NewReader(f)
	var pending []byte // a line written only partly so far
	lastCheck := time.Now()
	stopped := false // the container was seen stopped: drain, then return
	for {
		chunk, err := rd.ReadBytes('\n')
		pending = append(pending, chunk...)
		if err == nil {
			if werr := writeCRILine(out, pending, o); werr != nil {
				return werr
			}
			pending = pending[:0]
			continue
		}
		if !errors.Is(err, io.EOF) {
			return err
		}
		if next != nil { // the rotated file is drained: go on with its successor
			f.Close()
			f, next, pending = next, nil, pending[:0]
			rd.Reset(f)
			continue
		}
		out.flush()
		if !o.follow {
			return nil
		}
		if next = rotatedLog(f, path); next != nil {
			continue // read f to its end once more, then switch
		}
		if time.Since(lastCheck) > time.Second {
			if stopped {
				return nil // read to the end once more after the container stopped
			}
			if stopped = !running(ctx); stopped {
				continue // lines written since the last EOF are still to come
			}
			lastCheck = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(followPoll):
		}
	}
}

// rotatedLog returns the file that now stands at path in place of cur, once the runtime
// writes to it. A new file that is still empty is not taken yet: the runtime may create it
// before it stops writing to cur, and each of its writes to the new file comes after its
// last one to cur, so cur read to its end afterwards holds all of cur's lines.
func rotatedLog(cur *os.File, path string) *os.File {
	f, err := os.Open(path)
	if err != nil {
		return nil // renamed away, not reopened yet
	}
	curInfo, err1 := cur.Stat()
	info, err2 := f.Stat()
	if err1 != nil || err2 != nil || os.SameFile(curInfo, info) || info.Size() == 0 {
		f.Close()
		return nil
	}
	return f
}

// writeCRILine decodes "<timestamp> <stream> <P|F> <content>" and writes the content.
func writeCRILine(out *flushWriter, line []byte, o logOptions) error {
	parts := bytes.SplitN(bytes.TrimSuffix(line, []byte("\n")), []byte(" "), 4)
	if len(parts) < 4 {
		return nil // not a CRI log line
	}
	ts, err := time.Parse(time.RFC3339Nano, string(parts[0]))
	if err == nil && !o.since.IsZero() && ts.Before(o.since) {
		return nil
	}
	if o.timestamps {
		if _, err := out.Write(append(parts[0], ' ')); err != nil {
			return err
		}
	}
	content := parts[3]
	if string(parts[2]) == "F" {
		content = append(content, '\n')
	}
	_, err = out.Write(content)
	return err
}

// tailOffset finds where the last n lines of f start.
func tailOffset(f *os.File, n int64) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return st.Size(), nil
	}
	const block = 32 << 10
	size := st.Size()
	end := size
	var newlines int64
	buf := make([]byte, block)
	for end > 0 {
		start := max(end-block, 0)
		b := buf[:end-start]
		if _, err := f.ReadAt(b, start); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] != '\n' || start+int64(i) == size-1 {
				continue
			}
			newlines++
			if newlines == n {
				return start + int64(i) + 1, nil
			}
		}
		end = start
	}
	return 0, nil
}

var errLimitReached = errors.New("limitBytes reached")

// flushWriter streams to the client, flushing as it goes, and stops at a byte limit.
type flushWriter struct {
	w       http.ResponseWriter
	limit   int64
	written int64
}

func (fw *flushWriter) Write(p []byte) (int, error) {
	if fw.limit > 0 && fw.written+int64(len(p)) > fw.limit {
		p = p[:fw.limit-fw.written]
		n, _ := fw.w.Write(p)
		fw.written += int64(n)
		fw.flush()
		return n, errLimitReached
	}
	n, err := fw.w.Write(p)
	fw.written += int64(n)
	return n, err
}

func (fw *flushWriter) flush() {
	if f, ok := fw.w.(http.Flusher); ok {
		f.Flush()
	}
}
