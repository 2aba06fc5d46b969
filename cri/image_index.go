package cri

import "sync"

// imageIndex holds the namespace's images, grouped by CRI image ID, between changes, so
// that status calls do not list containerd's image records each time: ContainerStatus
// reports its container's image names on every call, and kubelet asks for the status of
// every container at each sync.
//
// The index is trusted only while an event subscription tells it about image changes made
// by others (ctr, another client of the namespace); skiff's own changes invalidate it
// before they return. A listing that raced with a change is not kept.
type imageIndex struct {
	mu       sync.Mutex
	gen      uint64      // bumped by every invalidation
	watching bool        // containerd's image events reach invalidate
	images   []*criImage // nil: not loaded; callers must not modify the entries
}

// get returns the cached images, or lists them with list and keeps the result when
// nothing changed meanwhile.
func (x *imageIndex) get(list func() ([]*criImage, error)) ([]*criImage, error) {
	x.mu.Lock()
	if x.watching && x.images != nil {
		images := x.images
		x.mu.Unlock()
		return images, nil
	}
	gen := x.gen
	x.mu.Unlock()
	images, err := list()
	if err != nil {
		return nil, err
	}
	x.mu.Lock()
	if x.watching && x.gen == gen {
		x.images = images
	}
	x.mu.Unlock()
	return images, nil
}

// invalidate drops the cached images; the next get lists them again.
func (x *imageIndex) invalidate() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.gen++
	x.images = nil
}

// setWatching says whether image events are being received; without them nothing is cached.
func (x *imageIndex) setWatching(on bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.watching = on
	x.gen++
	x.images = nil
}
