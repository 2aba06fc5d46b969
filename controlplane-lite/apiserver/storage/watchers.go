package storage

import "k8s.io/apimachinery/pkg/selection"

// watcherSet holds a cache's watchers, indexed so that an event reaches only the watchers
// that may want it: a watcher whose field selector pins a field to one value (a node
// agent's spec.nodeName=node1) is found through that value, the others are always asked.
// With one agent per node, a pod event then costs the same however many nodes there are.
type watcherSet struct {
	all      map[*cacheWatcher]struct{}
	unpinned map[*cacheWatcher]struct{}
	// pinned maps field -> value -> watchers requiring field=value.
	pinned map[string]map[string]map[*cacheWatcher]struct{}
}

func newWatcherSet() watcherSet {
	return watcherSet{
		all:      map[*cacheWatcher]struct{}{},
		unpinned: map[*cacheWatcher]struct{}{},
		pinned:   map[string]map[string]map[*cacheWatcher]struct{}{},
	}
}

// pin returns the field and value w's field selector requires, if any.
func pin(w *cacheWatcher) (field, value string, ok bool) {
	if w.pred.field == nil {
		return "", "", false
	}
	for _, r := range w.pred.field.Requirements() {
		if r.Operator == selection.Equals || r.Operator == selection.DoubleEquals {
			return r.Field, r.Value, true
		}
	}
	return "", "", false
}

func (s *watcherSet) add(w *cacheWatcher) {
	s.all[w] = struct{}{}
	field, value, ok := pin(w)
	if !ok {
		s.unpinned[w] = struct{}{}
		return
	}
	byValue := s.pinned[field]
	if byValue == nil {
		byValue = map[string]map[*cacheWatcher]struct{}{}
		s.pinned[field] = byValue
	}
	if byValue[value] == nil {
		byValue[value] = map[*cacheWatcher]struct{}{}
	}
	byValue[value][w] = struct{}{}
}

// remove drops w and reports whether it was there.
func (s *watcherSet) remove(w *cacheWatcher) bool {
	if _, ok := s.all[w]; !ok {
		return false
	}
	delete(s.all, w)
	field, value, ok := pin(w)
	if !ok {
		delete(s.unpinned, w)
		return true
	}
	delete(s.pinned[field][value], w)
	if len(s.pinned[field][value]) == 0 {
		delete(s.pinned[field], value)
	}
	if len(s.pinned[field]) == 0 {
		delete(s.pinned, field)
	}
	return true
}

// candidates calls fn for every watcher that may be interested in ev: the unpinned ones
// and those pinned to the value the object had before or has after ev. fn may remove the
// watcher it is given.
func (s *watcherSet) candidates(ev *cacheEvent, fn func(*cacheWatcher)) {
	for w := range s.unpinned {
		fn(w)
	}
	for field, byValue := range s.pinned {
		// The object's value of field after and before the event, each once.
		values := make([]string, 0, 2)
		if ev.cur != nil {
			values = append(values, ev.cur.fields[field])
		}
		if ev.prev != nil && (ev.cur == nil || ev.prev.fields[field] != values[0]) {
			values = append(values, ev.prev.fields[field])
		}
		for _, v := range values {
			for w := range byValue[v] {
				fn(w)
			}
		}
	}
}
