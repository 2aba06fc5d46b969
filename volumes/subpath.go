package volumes

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// maxSubPathLinks bounds the symlinks followed while resolving one subPath, like the
// kernel's own limit on nested links.
const maxSubPathLinks = 40

// ResolveSubPath returns the host path of subPath inside the volume at root, following
// symlinks as the container would see them: relative to the link's directory, absolute
// ones from root, and never above root. A container can put symlinks into a writable
// volume (an emptyDir), so a plain join would let `subPath: escape` with `escape -> /`
// mount the host's filesystem into a pod.
//
// Components that do not exist yet are kept as they are; the caller creates them. The
// result is checked when it is made, not when runc mounts it: PinSubPath closes that gap.
func ResolveSubPath(root, subPath string) (string, error) {
	if filepath.IsAbs(subPath) {
		return "", fmt.Errorf("subPath %q must be a relative path", subPath)
	}
	resolved := "" // relative to root, clean, never starting with ".."
	remaining := subPath
	links := 0
	for remaining != "" {
		var part string
		part, remaining, _ = strings.Cut(remaining, "/")
		switch part {
		case "", ".":
			continue
		case "..":
			resolved = parentWithin(resolved)
			continue
		}
		next := path.Join(resolved, part)
		info, err := os.Lstat(filepath.Join(root, next))
		if errors.Is(err, fs.ErrNotExist) {
			resolved = next
			continue
		}
		if err != nil {
			return "", fmt.Errorf("subPath %q: %w", subPath, err)
		}
		if info.Mode()&fs.ModeSymlink == 0 {
			resolved = next
			continue
		}
		if links++; links > maxSubPathLinks {
			return "", fmt.Errorf("subPath %q: too many levels of symbolic links", subPath)
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", fmt.Errorf("subPath %q: %w", subPath, err)
		}
		if path.IsAbs(target) {
			resolved = "" // "/" inside the volume is the volume's root
		}
		// The rest of the path continues from the link's target; path.Join keeps a
		// leading ".." of a relative target, which the loop clamps at the root.
		remaining = strings.TrimPrefix(path.Join(target, remaining), "/")
	}
	return filepath.Join(root, filepath.FromSlash(resolved)), nil
}

// parentWithin is ".." of a root-relative path, staying at the root.
func parentWithin(rel string) string {
	if rel == "" {
		return ""
	}
	parent := path.Dir(rel)
	if parent == "." {
		return ""
	}
	return parent
}
