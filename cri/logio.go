package cri

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
)

// maxLogLine is where a long line is split into partial ("P") records, as
// containerd's CRI does.
const maxLogLine = 16 * 1024

// containerLog turns a task's stdout/stderr FIFOs into the CRI log format:
//
//	<RFC3339Nano> <stdout|stderr> <F|P> <line>
//
// It reads the FIFOs itself (cio.DirectIO) instead of letting cio copy them, so that a
// server shutting down can let go of the FIFOs without deleting them: the shim keeps
// them open and the next server re-attaches to the same paths.
//
// The raw output is also fanned out to attached clients (see Attach), and a container
// created with stdin keeps its stdin FIFO open here for them to write to.
type containerLog struct {
	tty   bool
	stdin bool
	path  string

	stdout, stderr outputFanout
	stdinCloseOnce sync.Once

	mu       sync.Mutex // serializes records from the two streams; guards file
	file     *os.File   // nil when the kubelet asked for no log
	released bool       // set once the task is gone or we detached
	dio      *cio.DirectIO
	fifoDir  string
	copiers  sync.WaitGroup
	detached atomic.Bool
	closeOne sync.Once
}

func openContainerLog(path string, tty, stdin bool) (*containerLog, error) {
	l := &containerLog{tty: tty, stdin: stdin, path: path}
	if path != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("create log directory: %w", err)
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			return nil, fmt.Errorf("open container log: %w", err)
		}
		l.file = f
	}
	return l, nil
}

// creator makes FIFOs under fifoDir for a new task.
func (l *containerLog) creator(fifoDir string) cio.Creator {
	return func(id string) (cio.IO, error) {
		set, err := cio.NewFIFOSetInDir(fifoDir, id, l.tty)
		if err != nil {
			return nil, err
		}
		return l.start(set.Config)
	}
}

// attach reopens the FIFOs of a running task (after a server restart).
func (l *containerLog) attach() cio.Attach {
	return func(set *cio.FIFOSet) (cio.IO, error) {
		if set == nil {
			return nil, errors.New("task has no IO to attach to")
		}
		return l.start(set.Config)
	}
}

func (l *containerLog) start(cfg cio.Config) (cio.IO, error) {
	if !l.stdin {
		cfg.Stdin = ""
	}
	cfg.Terminal = l.tty
	if l.tty {
		cfg.Stderr = ""
	}
	if cfg.Stdout != "" {
		l.fifoDir = filepath.Dir(cfg.Stdout) // removed with the task's output
	}
	// A nil closer: closing our ends must not remove the FIFOs.
	dio, err := cio.NewDirectIO(context.Background(), cio.NewFIFOSet(cfg, nil))
	if err != nil {
		return nil, err
	}
	l.dio = dio
	// A task made without output (not by skiff) has no stdout FIFO to read.
	if dio.Stdout != nil {
		l.copiers.Add(1)
		go l.copy("stdout", dio.Stdout)
	}
	if dio.Stderr != nil {
		l.copiers.Add(1)
		go l.copy("stderr", dio.Stderr)
	}
	return dio, nil
}

func (l *containerLog) copy(stream string, r io.Reader) {
	defer l.copiers.Done()
	fan := &l.stdout
	if stream == "stderr" {
		fan = &l.stderr
	}
	// Attached clients get bytes as they come, not lines: a shell prompt has no newline.
	br := bufio.NewReaderSize(io.TeeReader(r, fan), maxLogLine)
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case err == nil:
			l.write(stream, "F", bytes.TrimSuffix(line[:len(line)-1], []byte{'\r'}))
			continue
		case errors.Is(err, bufio.ErrBufferFull):
			l.write(stream, "P", line)
			continue
		case len(line) == 0:
		case l.detached.Load():
			// Cut short by a server shutdown; the rest of the line follows after re-attaching.
			l.write(stream, "P", line)
		default:
			// The task exited without a final newline: the line is complete.
			l.write(stream, "F", line)
		}
		return
	}
}

func (l *containerLog) write(stream, tag string, line []byte) {
	rec := make([]byte, 0, len(line)+64)
	rec = time.Now().AppendFormat(rec, time.RFC3339Nano)
	rec = append(rec, ' ')
	rec = append(rec, stream...)
	rec = append(rec, ' ')
	rec = append(rec, tag...)
	rec = append(rec, ' ')
	rec = append(rec, line...)
	rec = append(rec, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file != nil {
		_, _ = l.file.Write(rec)
	}
}

// reopen starts a new log file at the same path after the kubelet rotated the old one.
func (l *containerLog) reopen() error {
	if l.path == "" {
		return nil
	}
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("reopen container log: %w", err)
	}
	l.mu.Lock()
	if l.released {
		l.mu.Unlock()
		_ = f.Close()
		return fmt.Errorf("container output is no longer collected: %w", errdefs.ErrFailedPrecondition)
	}
	old := l.file
	l.file = f
	l.mu.Unlock()
	if old != nil {
		return old.Close()
	}
	return nil
}

// drain waits until both streams reached EOF (every writer closed), at most timeout.
func (l *containerLog) drain(timeout time.Duration) bool {
	done := make(chan struct{})
	go func() { l.copiers.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// close ends logging for an exited task and removes its FIFOs.
func (l *containerLog) close() {
	l.closeOne.Do(func() {
		l.release()
		if l.fifoDir != "" {
			_ = os.RemoveAll(l.fifoDir)
		}
	})
}

// detach stops reading while the task keeps running (server shutdown); the FIFOs stay.
func (l *containerLog) detach() {
	l.detached.Store(true)
	l.closeOne.Do(l.release)
}

func (l *containerLog) release() {
	if l.dio != nil {
		_ = l.dio.Close() // unblocks the copiers and any stdin writer
	}
	l.copiers.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.released = true
	if l.file != nil {
		_ = l.file.Close()
		l.file = nil
	}
}

// writeStdin copies r to the container's stdin until r ends or the task is gone.
// At the end of r, closeAfter (if set: the container's stdin_once) gets to close it.
func (l *containerLog) writeStdin(r io.Reader, closeAfter func()) error {
	if l.dio == nil || l.dio.Stdin == nil {
		return fmt.Errorf("container has no stdin: %w", errdefs.ErrFailedPrecondition)
	}
	buf := make([]byte, 32*1024)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if werr := l.toStdin(buf[:n]); werr != nil {
				return werr
			}
		}
		if errors.Is(err, io.EOF) {
			if closeAfter != nil {
				closeAfter()
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// toStdin writes without a lock: the FIFO is an *os.File, whose Close from another
// goroutine (stdin_once, task exit) safely fails a blocked Write.
func (l *containerLog) toStdin(p []byte) error {
	_, err := l.dio.Stdin.Write(p)
	return err
}

func (l *containerLog) closeStdin() {
	l.stdinCloseOnce.Do(func() { _ = l.dio.Stdin.Close() })
}

// outputFanout copies one output stream of a container to attached clients.
// It never fails and never waits for a client: each has a queue of its own, written
// out by a goroutine of its own, and a client that falls fanoutQueueLen writes behind
// (it stopped reading) or whose write fails is dropped, while the log goes on. A
// stalled `kubectl attach` must not stall the container, whose writes would block once
// the FIFO between them is full.
type outputFanout struct {
	mu   sync.Mutex
	next int
	subs map[int]*fanoutClient
}

// fanoutQueueLen bounds a client's backlog, in writes of the log copier (up to 16 KiB
// each, so at most 2 MiB).
const fanoutQueueLen = 128

type fanoutClient struct {
	w       io.Writer
	queue   chan []byte   // closed (under outputFanout.mu) when the client is dropped
	stopped atomic.Bool   // set by remove: queued writes are not written
	failed  chan struct{} // closed when a write fails or the queue overflows
	fail    sync.Once
	done    chan struct{} // closed when the writer goroutine has ended
}

func (c *fanoutClient) markFailed() { c.fail.Do(func() { close(c.failed) }) }

func (c *fanoutClient) run() {
	defer close(c.done)
	for p := range c.queue {
		if c.stopped.Load() {
			continue
		}
		if _, err := c.w.Write(p); err != nil {
			c.markFailed()
			c.stopped.Store(true)
		}
	}
}

func (f *outputFanout) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, c := range f.subs {
		select {
		case c.queue <- bytes.Clone(p):
		default:
			delete(f.subs, id)
			close(c.queue)
			c.markFailed()
		}
	}
	return len(p), nil
}

// fanoutSub is one client's subscription.
type fanoutSub struct {
	f  *outputFanout
	id int
	c  *fanoutClient
}

// add subscribes w. A nil w is not subscribed and never fails.
func (f *outputFanout) add(w io.Writer) *fanoutSub {
	if w == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.subs == nil {
		f.subs = map[int]*fanoutClient{}
	}
	id := f.next
	f.next++
	c := &fanoutClient{w: w, queue: make(chan []byte, fanoutQueueLen), failed: make(chan struct{}), done: make(chan struct{})}
	f.subs[id] = c
	go c.run()
	return &fanoutSub{f: f, id: id, c: c}
}

// failed is closed if the client went away or fell too far behind; nil for no client.
func (s *fanoutSub) failed() <-chan struct{} {
	if s == nil {
		return nil
	}
	return s.c.failed
}

// unsubscribe stops the writes to the client; with deliver, what is queued is written
// first, for up to timeout.
func (s *fanoutSub) unsubscribe(deliver bool, timeout time.Duration) {
	if s == nil {
		return
	}
	s.f.mu.Lock()
	if _, ok := s.f.subs[s.id]; ok {
		delete(s.f.subs, s.id)
		close(s.c.queue)
	}
	s.f.mu.Unlock()
	if !deliver {
		s.c.stopped.Store(true)
		return
	}
	select {
	case <-s.c.done:
	case <-time.After(timeout):
		s.c.stopped.Store(true)
	}
}

// remove stops the writes to the client: what is queued is dropped (a write under way
// may still finish).
func (s *fanoutSub) remove() { s.unsubscribe(false, 0) }

// flush writes out what is queued for the client, for up to timeout, then stops.
func (s *fanoutSub) flush(timeout time.Duration) { s.unsubscribe(true, timeout) }
