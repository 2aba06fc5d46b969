package volumes

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The layout an AtomicWriter keeps in its target directory, as kubelet's:
//
//	..2026_11_28_20_01_02.123456789/   one generation of the payload (a timestamped dir)
//	..data -> ..2026_11_28_20_01_02.123456789
//	key    -> ..data/key                user-visible names, symlinks through ..data
//
// A new generation is written beside the old one and published by renaming a fresh
// symlink over ..data, which is atomic: a reader opening "key" sees the old or the new
// generation, never a missing or half-written file.
const (
	dataDirName    = "..data"
	newDataDirName = "..data_tmp"
)

// FileProjection is one file of a payload: its content and permission bits.
type FileProjection struct {
	Data []byte
	Mode fs.FileMode
}

// AtomicWriter publishes payloads into one target directory.
type AtomicWriter struct {
	dir string
}

// NewAtomicWriter returns a writer for dir, which must exist.
func NewAtomicWriter(dir string) *AtomicWriter {
	return &AtomicWriter{dir: dir}
}

// Write makes the directory show exactly payload (relative path → file). It does nothing
// when the current generation already holds the same files, so periodic syncs cost a read.
func (w *AtomicWriter) Write(payload map[string]FileProjection) error {
	for p := range payload {
		if err := validatePayloadPath(p); err != nil {
			return err
		}
	}
	oldGen, err := os.Readlink(filepath.Join(w.dir, dataDirName))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read %s: %w", dataDirName, err)
	}
	if oldGen != "" && generationMatches(filepath.Join(w.dir, oldGen), payload) {
		return nil
	}
	gen, err := w.writeGeneration(payload)
	if err != nil {
		return err
	}
	if err := w.publish(gen); err != nil {
		os.RemoveAll(filepath.Join(w.dir, gen))
		return err
	}
	if err := w.linkUserVisible(payload); err != nil {
		return err
	}
	if err := w.removeStaleLinks(payload); err != nil {
		return err
	}
	return w.removeGenerations(gen, oldGen)
}

// removeGenerations removes every generation but the current one and the one it replaced.
// Kubelet removes the replaced one at once, which leaves a reader that resolved ..data
// just before the swap with a missing file; keeping it until the next update closes that
// window (updates come seconds apart).
func (w *AtomicWriter) removeGenerations(keep ...string) error {
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		return fmt.Errorf("read %s: %w", w.dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || !strings.HasPrefix(name, "..") || slices.Contains(keep, name) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(w.dir, name)); err != nil {
			return fmt.Errorf("remove old generation %s: %w", name, err)
		}
	}
	return nil
}

// validatePayloadPath rejects paths that could escape the directory or collide with the
// writer's own ".." entries.
func validatePayloadPath(p string) error {
	switch {
	case p == "":
		return errors.New("invalid path: must not be empty")
	case filepath.IsAbs(p):
		return fmt.Errorf("invalid path %q: must be relative", p)
	case strings.HasPrefix(p, ".."):
		return fmt.Errorf("invalid path %q: must not start with '..'", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." || part == "" {
			return fmt.Errorf("invalid path %q: must not contain '..' or empty elements", p)
		}
	}
	return nil
}

// generationMatches reports whether dir holds exactly payload, content and mode.
func generationMatches(dir string, payload map[string]FileProjection) bool {
	count := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		want, ok := payload[rel]
		if !ok {
			return errors.New("extra file")
		}
		info, err := d.Info()
		if err != nil || info.Mode().Perm() != want.Mode.Perm() {
			return errors.New("mode differs")
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, want.Data) {
			return errors.New("content differs")
		}
		count++
		return nil
	})
	return err == nil && count == len(payload)
}

// writeGeneration writes payload into a new timestamped directory and returns its name.
func (w *AtomicWriter) writeGeneration(payload map[string]FileProjection) (string, error) {
	dir, err := os.MkdirTemp(w.dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return "", fmt.Errorf("create generation dir: %w", err)
	}
	// MkdirTemp makes it 0700; containers may run as any user.
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("chmod generation dir: %w", err)
	}
	for p, f := range payload {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("create dir for %s: %w", p, err)
		}
		if err := os.WriteFile(full, f.Data, f.Mode.Perm()); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("write %s: %w", p, err)
		}
		// WriteFile's mode went through the umask.
		if err := os.Chmod(full, f.Mode.Perm()); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("chmod %s: %w", p, err)
		}
	}
	return filepath.Base(dir), nil
}

// publish points ..data at gen by renaming a new symlink over it.
func (w *AtomicWriter) publish(gen string) error {
	tmp := filepath.Join(w.dir, newDataDirName)
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale %s: %w", newDataDirName, err)
	}
	if err := os.Symlink(gen, tmp); err != nil {
		return fmt.Errorf("create %s: %w", newDataDirName, err)
	}
	if err := os.Rename(tmp, filepath.Join(w.dir, dataDirName)); err != nil {
		return fmt.Errorf("publish %s: %w", dataDirName, err)
	}
	return nil
}

// topLevel returns the first element of each payload path: the names users see.
func topLevel(payload map[string]FileProjection) map[string]bool {
	names := map[string]bool{}
	for p := range payload {
		names[strings.SplitN(p, "/", 2)[0]] = true
	}
	return names
}

// linkUserVisible creates name → ..data/name for every top-level payload name. Existing
// links stay: they already resolve through ..data.
func (w *AtomicWriter) linkUserVisible(payload map[string]FileProjection) error {
	for name := range topLevel(payload) {
		link := filepath.Join(w.dir, name)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join(dataDirName, name), link); err != nil {
			return fmt.Errorf("link %s: %w", name, err)
		}
	}
	return nil
}

// removeStaleLinks removes the user-visible names no longer in the payload.
func (w *AtomicWriter) removeStaleLinks(payload map[string]FileProjection) error {
	keep := topLevel(payload)
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		return fmt.Errorf("read %s: %w", w.dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, "..") || keep[name] {
			continue
		}
		if err := os.Remove(filepath.Join(w.dir, name)); err != nil {
			return fmt.Errorf("remove stale %s: %w", name, err)
		}
	}
	return nil
}
