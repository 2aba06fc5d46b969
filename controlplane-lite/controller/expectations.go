package controller

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/sets"
)

// expectationsTTL bounds how long a controller waits for its own writes to show up in the
// informer before it acts again anyway (a watch event may be lost, e.g. on a relist).
const expectationsTTL = 5 * time.Minute

// expectations remembers, per controller key, how many creations and which deletions the
// controller has issued but not yet observed through its informers, like kube's
// UIDTrackingControllerExpectations. Deletions are tracked by pod key, so observing the same
// deletion twice (deletionTimestamp set, then the object removed) counts once.
type expectations struct {
	mu    sync.Mutex
	now   func() time.Time
	items map[string]*expectation
}

type expectation struct {
	adds      int
	deletes   sets.Set[string]
	timestamp time.Time
}

func newExpectations(now func() time.Time) *expectations {
	return &expectations{now: now, items: map[string]*expectation{}}
}

// satisfied reports whether the controller may sync key: all its writes were observed, the
// expectations expired, or none were ever recorded.
func (e *expectations) satisfied(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	exp, ok := e.items[key]
	if !ok {
		return true
	}
	if exp.adds <= 0 && exp.deletes.Len() == 0 {
		return true
	}
	return e.now().Sub(exp.timestamp) > expectationsTTL
}

// expectCreations replaces the expectations of key with n pending creations.
func (e *expectations) expectCreations(key string, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.items[key] = &expectation{adds: n, deletes: sets.New[string](), timestamp: e.now()}
}

// expectDeletions replaces the expectations of key with the deletion of podKeys.
func (e *expectations) expectDeletions(key string, podKeys []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.items[key] = &expectation{deletes: sets.New(podKeys...), timestamp: e.now()}
}

// creationObserved lowers the pending creations of key by one (also used when a creation
// was skipped or failed, so the controller does not wait for it).
func (e *expectations) creationObserved(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if exp, ok := e.items[key]; ok {
		exp.adds--
	}
}

// deletionObserved marks the deletion of podKey as seen.
func (e *expectations) deletionObserved(key, podKey string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if exp, ok := e.items[key]; ok {
		exp.deletes.Delete(podKey)
	}
}

// forget drops everything known about key, when its owner is gone.
func (e *expectations) forget(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.items, key)
}
