package volumes

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func readLinkOrFail(t *testing.T, p string) string {
	t.Helper()
	target, err := os.Readlink(p)
	if err != nil {
		t.Fatalf("readlink %s: %v", p, err)
	}
	return target
}

func TestAtomicWriterLayout(t *testing.T) {
	dir := t.TempDir()
	w := NewAtomicWriter(dir)
	payload := map[string]FileProjection{
		"a":         {Data: []byte("one"), Mode: 0o644},
		"sub/dir/b": {Data: []byte("two"), Mode: 0o400},
	}
	if err := w.Write(payload); err != nil {
		t.Fatal(err)
	}
	gen := readLinkOrFail(t, filepath.Join(dir, "..data"))
	if !strings.HasPrefix(gen, "..") || strings.Contains(gen, "/") {
		t.Errorf("..data points at %q, want a sibling timestamped dir", gen)
	}
	if got := readLinkOrFail(t, filepath.Join(dir, "a")); got != "..data/a" {
		t.Errorf("a -> %q, want ..data/a", got)
	}
	if got := readLinkOrFail(t, filepath.Join(dir, "sub")); got != "..data/sub" {
		t.Errorf("sub -> %q, want ..data/sub", got)
	}
	for p, want := range payload {
		got, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil || !bytes.Equal(got, want.Data) {
			t.Errorf("%s = %q, %v; want %q", p, got, err, want.Data)
		}
		info, err := os.Stat(filepath.Join(dir, p))
		if err != nil || info.Mode().Perm() != want.Mode {
			t.Errorf("%s mode = %v, %v; want %v", p, info.Mode().Perm(), err, want.Mode)
		}
	}
}

func TestAtomicWriterUpdate(t *testing.T) {
	dir := t.TempDir()
	w := NewAtomicWriter(dir)
	if err := w.Write(map[string]FileProjection{"a": {Data: []byte("1"), Mode: 0o644}, "b": {Data: []byte("x"), Mode: 0o644}}); err != nil {
		t.Fatal(err)
	}
	first := readLinkOrFail(t, filepath.Join(dir, "..data"))

	// The same payload again changes nothing, not even the generation.
	if err := w.Write(map[string]FileProjection{"a": {Data: []byte("1"), Mode: 0o644}, "b": {Data: []byte("x"), Mode: 0o644}}); err != nil {
		t.Fatal(err)
	}
	if got := readLinkOrFail(t, filepath.Join(dir, "..data")); got != first {
		t.Errorf("unchanged payload made a new generation %s (was %s)", got, first)
	}

	// A new value and a removed key: a new generation, the old one and b are gone.
	if err := w.Write(map[string]FileProjection{"a": {Data: []byte("2"), Mode: 0o644}}); err != nil {
		t.Fatal(err)
	}
	second := readLinkOrFail(t, filepath.Join(dir, "..data"))
	if second == first {
		t.Fatalf("changed payload kept generation %s", first)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "a")); string(got) != "2" {
		t.Errorf("a = %q after update, want 2", got)
	}
	if _, err := os.Lstat(filepath.Join(dir, "b")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("b still there after it left the payload: %v", err)
	}
	// The replaced generation stays until the next update, for readers caught mid-swap.
	if _, err := os.Stat(filepath.Join(dir, first)); err != nil {
		t.Errorf("replaced generation %s removed at once: %v", first, err)
	}

	// A mode change alone is a change; now the first generation goes.
	if err := w.Write(map[string]FileProjection{"a": {Data: []byte("2"), Mode: 0o600}}); err != nil {
		t.Fatal(err)
	}
	if info, _ := os.Stat(filepath.Join(dir, "a")); info.Mode().Perm() != 0o600 {
		t.Errorf("mode of a = %v, want 0600", info.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(dir, first)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("generation %s not removed two updates later: %v", first, err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 4 { // two generations, ..data, a
		t.Errorf("dir holds %v, want two generations, ..data and a", names)
	}
}

func TestAtomicWriterRejectsBadPaths(t *testing.T) {
	for _, p := range []string{"", "/abs", "..data", "../escape", "a/../../b", "..hidden", "a//b"} {
		err := NewAtomicWriter(t.TempDir()).Write(map[string]FileProjection{p: {Data: []byte("x"), Mode: 0o644}})
		if err == nil {
			t.Errorf("path %q accepted", p)
		}
	}
}

// TestAtomicWriterNoMissingWindow reads the user-visible file in a tight loop while the
// payload is rewritten: every read must succeed and show one whole generation.
func TestAtomicWriterNoMissingWindow(t *testing.T) {
	dir := t.TempDir()
	w := NewAtomicWriter(dir)
	value := func(i int) []byte { return bytes.Repeat([]byte(strconv.Itoa(i%10)), 4096) }
	if err := w.Write(map[string]FileProjection{"key": {Data: value(0), Mode: 0o644}}); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var reads atomic.Int64
	var failure atomic.Value
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for !stop.Load() {
				got, err := os.ReadFile(filepath.Join(dir, "key"))
				if err != nil {
					failure.Store("read failed: " + err.Error())
					return
				}
				if len(got) != 4096 || !bytes.Equal(got, bytes.Repeat(got[:1], 4096)) {
					failure.Store("torn read: " + string(got[:min(len(got), 16)]))
					return
				}
				reads.Add(1)
			}
		})
	}
	for i := 1; i <= 200 && failure.Load() == nil; i++ {
		if err := w.Write(map[string]FileProjection{"key": {Data: value(i), Mode: 0o644}}); err != nil {
			t.Fatal(err)
		}
		// Real updates come seconds apart; a reader is only guaranteed the generation it
		// resolved until the update after next.
		time.Sleep(5 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if f := failure.Load(); f != nil {
		t.Fatal(f)
	}
	if reads.Load() == 0 {
		t.Fatal("the readers never ran")
	}
}
