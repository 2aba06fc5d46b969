package agent

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"
	testingclock "k8s.io/utils/clock/testing"
)

// testLogWriter plays the runtime's side of a container log: it appends CRI records to
// the file it holds open and, like cri's containerLog.reopen, opens a new file at the path
// when asked.
type testLogWriter struct {
	t    *testing.T
	path string
	mu   sync.Mutex
	f    *os.File
}

func newTestLogWriter(t *testing.T, path string) *testLogWriter {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	w := &testLogWriter{t: t, path: path}
	if err := w.reopen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.f.Close()
	})
	return w
}

func (w *testLogWriter) line(s string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	rec := time.Now().UTC().Format(time.RFC3339Nano) + " stdout F " + s + "\n"
	if _, err := w.f.WriteString(rec); err != nil {
		w.t.Errorf("write log: %v", err)
	}
}

// swapTo makes f the file written from now on (the second half of a reopen).
func (w *testLogWriter) swapTo(f *os.File) {
	w.mu.Lock()
	old := w.f
	w.f = f
	w.mu.Unlock()
	if old != nil {
		old.Close()
	}
}

func (w *testLogWriter) reopen() error {
	f, err := os.OpenFile(w.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	w.swapTo(f)
	return nil
}

// logRuntime is the fake runtime whose ReopenContainerLog also reopens the test's writers.
type logRuntime struct {
	*critest.FakeRuntimeService
	writers map[string]*testLogWriter // set up before the manager runs
}

func (r *logRuntime) ReopenContainerLog(ctx context.Context, id string) error {
	if err := r.FakeRuntimeService.ReopenContainerLog(ctx, id); err != nil {
		return err
	}
	if w := r.writers[id]; w != nil {
		return w.reopen()
	}
	return nil
}

func (r *logRuntime) reopens() int { return countCalls(r.GetCalls(), "ReopenContainerLog") }

var rotationStart = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

type rotationEnv struct {
	rt    *logRuntime
	m     *containerLogManager
	clock *testingclock.FakeClock
	dir   string
}

func newRotationEnv(t *testing.T, policy LogRotation) *rotationEnv {
	t.Helper()
	if err := policy.validate(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rt := &logRuntime{FakeRuntimeService: critest.NewFakeRuntimeService(), writers: map[string]*testLogWriter{}}
	rt.SetFakeContainers(nil)
	clk := testingclock.NewFakeClock(rotationStart)
	m := &containerLogManager{policy: policy, runtime: rt, node: testNode, podLogsDir: dir, clock: clk}
	return &rotationEnv{rt: rt, m: m, clock: clk, dir: dir}
}

// addContainer registers a container with the fake runtime and a writer for its log.
func (e *rotationEnv) addContainer(t *testing.T, id, node string, state runtimeapi.ContainerState) *testLogWriter {
	t.Helper()
	path := filepath.Join(e.dir, "ns_pod_uid", id, "0.log")
	w := newTestLogWriter(t, path)
	e.rt.writers[id] = w
	e.rt.Lock()
	e.rt.Containers[id] = &critest.FakeContainer{ContainerStatus: runtimeapi.ContainerStatus{
		Id: id, Metadata: &runtimeapi.ContainerMetadata{Name: id}, State: state,
		LogPath: path, Labels: map[string]string{labelNode: node},
	}}
	e.rt.Unlock()
	return w
}

// fill writes lines until the log holds at least n bytes.
func fill(t *testing.T, w *testLogWriter, prefix string, n int64) {
	t.Helper()
	for i := 0; fileSize(t, w.path) < n; i++ {
		w.line(fmt.Sprintf("%s-%d", prefix, i))
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// rotatedFiles lists the names beside path that start with its base name, sorted.
func rotatedFiles(t *testing.T, path string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if name := e.Name(); strings.HasPrefix(name, filepath.Base(path)+".") {
			out = append(out, name)
		}
	}
	return out
}

func readLog(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(path, gzipSuffix) {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("gunzip %s: %v", path, err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			t.Fatalf("gunzip %s: %v", path, err)
		}
	}
	return string(b)
}

func TestLogRotationConfig(t *testing.T) {
	var r LogRotation
	if err := r.validate(); err != nil {
		t.Fatal(err)
	}
	want := LogRotation{MaxSize: 10 << 20, MaxFiles: 5, MonitorInterval: 10 * time.Second, Workers: 1}
	if r != want {
		t.Errorf("defaults %+v, want %+v", r, want)
	}
	for _, bad := range []LogRotation{{MaxSize: -1}, {MaxFiles: 1}, {MaxFiles: -2}, {MonitorInterval: -time.Second}, {Workers: -1}} {
		if err := bad.validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// TestContainerLogRotation rotates only the running containers of this node whose log
// reached MaxSize, and the runtime goes on in a new file.
func TestContainerLogRotation(t *testing.T) {
	e := newRotationEnv(t, LogRotation{MaxSize: 1024, MaxFiles: 3})
	big := e.addContainer(t, "big", testNode, runtimeapi.ContainerState_CONTAINER_RUNNING)
	small := e.addContainer(t, "small", testNode, runtimeapi.ContainerState_CONTAINER_RUNNING)
	other := e.addContainer(t, "other", "node-2", runtimeapi.ContainerState_CONTAINER_RUNNING)
	exited := e.addContainer(t, "exited", testNode, runtimeapi.ContainerState_CONTAINER_EXITED)
	fill(t, big, "big", 1024)
	fill(t, small, "small", 512)
	fill(t, other, "other", 4096)
	fill(t, exited, "exited", 4096)
	before := readLog(t, big.path)

	e.m.rotateLogs(t.Context())

	if n := e.rt.reopens(); n != 1 {
		t.Errorf("%d ReopenContainerLog calls, want 1", n)
	}
	want := "0.log." + rotationStart.Format(rotatedLogTimeFormat)
	if got := rotatedFiles(t, big.path); !slices.Equal(got, []string{want}) {
		t.Fatalf("rotated files %v, want [%s]", got, want)
	}
	if got := readLog(t, filepath.Join(filepath.Dir(big.path), want)); got != before {
		t.Errorf("rotated file differs from the log before rotation")
	}
	big.line("after")
	if got := readLog(t, big.path); !strings.HasSuffix(got, " stdout F after\n") || strings.Count(got, "\n") != 1 {
		t.Errorf("new log %q, want only the line written after rotation", got)
	}
	for _, w := range []*testLogWriter{small, other, exited} {
		if got := rotatedFiles(t, w.path); len(got) != 0 {
			t.Errorf("%s rotated: %v", w.path, got)
		}
	}
	// Rotating again within the same second would overwrite the rotated file.
	fill(t, big, "again", 1024)
	e.m.rotateLogs(t.Context())
	if n := e.rt.reopens(); n != 1 || len(rotatedFiles(t, big.path)) != 1 {
		t.Errorf("rotated twice within a second: %d reopens, files %v", n, rotatedFiles(t, big.path))
	}
}

// TestContainerLogRotationKeepsMaxFiles rotates many times: at most MaxFiles-1 rotated
// files stay, all but the newest gzipped, and they hold the newest rotated content.
func TestContainerLogRotationKeepsMaxFiles(t *testing.T) {
	e := newRotationEnv(t, LogRotation{MaxSize: 512, MaxFiles: 3, Workers: 2})
	w := e.addContainer(t, "c", testNode, runtimeapi.ContainerState_CONTAINER_RUNNING)
	var contents []string
	for round := range 5 {
		fill(t, w, fmt.Sprintf("round%d", round), 512)
		contents = append(contents, readLog(t, w.path))
		e.m.rotateLogs(t.Context())
		e.clock.Step(time.Minute)

		files := rotatedFiles(t, w.path)
		if want := min(round+1, 2); len(files) != want {
			t.Fatalf("round %d: rotated files %v, want %d", round, files, want)
		}
		for i, name := range files {
			newest := i == len(files)-1
			if strings.HasSuffix(name, gzipSuffix) == newest {
				t.Errorf("round %d: %s (newest %v) gzip state wrong", round, name, newest)
			}
			// Files sort oldest first and hold the last rounds' content in order.
			want := contents[len(contents)-len(files)+i]
			if got := readLog(t, filepath.Join(filepath.Dir(w.path), name)); got != want {
				t.Errorf("round %d: %s holds the wrong content", round, name)
			}
		}
	}
	if n := e.rt.reopens(); n != 5 {
		t.Errorf("%d reopens, want 5", n)
	}
}

// TestContainerLogRotationReopenFailure puts the log back when the runtime cannot reopen
// it, so lines still being written to it stay in the current log.
func TestContainerLogRotationReopenFailure(t *testing.T) {
	e := newRotationEnv(t, LogRotation{MaxSize: 256, MaxFiles: 2})
	w := e.addContainer(t, "c", testNode, runtimeapi.ContainerState_CONTAINER_RUNNING)
	fill(t, w, "before", 256)
	e.rt.InjectError("ReopenContainerLog", errors.New("not collecting output"))

	e.m.rotateLogs(t.Context())

	if got := rotatedFiles(t, w.path); len(got) != 0 {
		t.Errorf("rotated files %v after a failed reopen", got)
	}
	w.line("still-here")
	if got := readLog(t, w.path); !strings.Contains(got, "before-0") || !strings.HasSuffix(got, " still-here\n") {
		t.Errorf("log after a failed reopen lost lines: %q", got)
	}
	// The next round rotates.
	e.m.rotateLogs(t.Context())
	if got := rotatedFiles(t, w.path); len(got) != 1 || fileSize(t, w.path) != 0 {
		t.Errorf("retry: rotated %v, current size %d", got, fileSize(t, w.path))
	}
}

// TestContainerLogRotationCleansLeftovers removes what a crashed rotation left (a
// half-written .tmp, a plain file already compressed) and leaves other files alone; a
// log renamed away without a reopen is reopened.
func TestContainerLogRotationCleansLeftovers(t *testing.T) {
	e := newRotationEnv(t, LogRotation{MaxSize: 256, MaxFiles: 5})
	w := e.addContainer(t, "c", testNode, runtimeapi.ContainerState_CONTAINER_RUNNING)
	dir := filepath.Dir(w.path)
	for name, content := range map[string]string{
		"0.log.20260101-000000.gz":     "gz",
		"0.log.20260101-000000":        "already compressed",
		"0.log.20260102-000000.tmp":    "half a gzip",
		"0.log.20260102-000000":        "uncompressed",
		"0.log.notes":                  "not ours",
		"1.log.20260101-000000":        "another log's",
		"0.log.20260103-000000.gz.bak": "not ours either",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	fill(t, w, "x", 256)
	e.m.rotateLogs(t.Context())

	want := []string{
		"0.log.20260101-000000.gz", "0.log.20260102-000000.gz", "0.log.20260103-000000.gz.bak",
		"0.log." + rotationStart.Format(rotatedLogTimeFormat), "0.log.notes",
	}
	slices.Sort(want)
	if got := rotatedFiles(t, w.path); !slices.Equal(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
	if got := readLog(t, filepath.Join(dir, "0.log.20260102-000000.gz")); got != "uncompressed" {
		t.Errorf("compressed content %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "1.log.20260101-000000")); err != nil {
		t.Errorf("another log's rotated file: %v", err)
	}

	// An agent crash between the rename and the reopen: the log is missing.
	if err := os.Rename(w.path, w.path+".20260104-000000"); err != nil {
		t.Fatal(err)
	}
	e.m.rotateLogs(t.Context())
	if _, err := os.Stat(w.path); err != nil {
		t.Errorf("missing log not reopened: %v", err)
	}
}

// syncResponse is an http.ResponseWriter a test can read while a handler writes to it.
type syncResponse struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (r *syncResponse) Header() http.Header { return http.Header{} }
func (r *syncResponse) WriteHeader(int)     {}
func (r *syncResponse) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.Write(p)
}

func (r *syncResponse) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}

// follow runs copyCRILog with follow on path until the test ends.
func follow(t *testing.T, path string) (*syncResponse, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	out := &syncResponse{}
	done := make(chan error, 1)
	go func() {
		done <- copyCRILog(ctx, path, &flushWriter{w: out}, logOptions{follow: true, tailLines: -1},
			func(context.Context) bool { return true })
	}()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("copyCRILog: %v", err)
		}
	}
	return out, stop
}

func numbered(from, to int) string {
	var b strings.Builder
	for i := from; i <= to; i++ {
		fmt.Fprintf(&b, "line-%d\n", i)
	}
	return b.String()
}

func waitOutput(t *testing.T, out *syncResponse, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for out.String() != want {
		if time.Now().After(deadline) {
			t.Fatalf("followed output %q, want %q", out.String(), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFollowAcrossRotation: a follower sees every line once, in order, across rotations,
// whether it had read the old file to its end before the rotation or not.
func TestFollowAcrossRotation(t *testing.T) {
	e := newRotationEnv(t, LogRotation{MaxSize: 64, MaxFiles: 2})
	w := e.addContainer(t, "c", testNode, runtimeapi.ContainerState_CONTAINER_RUNNING)
	out, stop := follow(t, w.path)
	defer stop()
	n := 0
	write := func(k int) {
		for range k {
			n++
			w.line(fmt.Sprintf("line-%d", n))
		}
	}
	rotate := func() {
		e.m.rotateLogs(t.Context())
		e.clock.Step(time.Minute)
	}

	write(1)
	waitOutput(t, out, numbered(1, n)) // the follower has the file open
	write(4)
	rotate() // the follower may not have read these yet
	write(5)
	waitOutput(t, out, numbered(1, n))
	write(5)
	waitOutput(t, out, numbered(1, n))
	rotate() // the follower is at the end of the old file
	write(1)
	waitOutput(t, out, numbered(1, n))
	if got := e.rt.reopens(); got != 2 {
		t.Errorf("%d reopens, want 2", got)
	}
}

// TestFollowWaitsForRuntimeSwitch: a new file at the path that is still empty does not
// end the old one, which the runtime may still be writing to.
func TestFollowWaitsForRuntimeSwitch(t *testing.T) {
	e := newRotationEnv(t, LogRotation{})
	w := e.addContainer(t, "c", testNode, runtimeapi.ContainerState_CONTAINER_RUNNING)
	out, stop := follow(t, w.path)
	defer stop()

	w.line("line-1")
	waitOutput(t, out, numbered(1, 1))
	if err := os.Rename(w.path, w.path+".rotated"); err != nil {
		t.Fatal(err)
	}
	next, err := os.OpenFile(w.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * followPoll) // the follower sees the new, empty file
	w.line("line-2")           // still into the old file
	w.swapTo(next)
	w.line("line-3")
	waitOutput(t, out, numbered(1, 3))
}

// TestFollowDrainsAfterStop: lines a container wrote after the follower last reached the
// end of its file, just before it stopped, still reach the follower before the stream ends.
func TestFollowDrainsAfterStop(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	write := func(from, to int) {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		for i := from; i <= to; i++ {
			fmt.Fprintf(f, "2026-11-28T00:00:00.000000000Z stdout F line-%d\n", i)
		}
	}
	write(1, 3)
	// The container's last lines and its exit both land between the follower's EOF and
	// its liveness check: the check is where they are written.
	running := func(context.Context) bool {
		write(4, 6)
		return false
	}
	out := &syncResponse{}
	done := make(chan error, 1)
	go func() {
		done <- copyCRILog(t.Context(), path, &flushWriter{w: out}, logOptions{follow: true, tailLines: -1}, running)
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follow did not end after the container stopped")
	}
	if got := out.String(); got != numbered(1, 6) {
		t.Errorf("followed %q, want %q", got, numbered(1, 6))
	}
}
