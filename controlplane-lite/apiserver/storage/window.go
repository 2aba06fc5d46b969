package storage

import "sort"

// eventWindow is a ring of the most recent events, in revision order. It can replay every
// event after any revision from oldest on; older ones are gone.
type eventWindow struct {
	events []*cacheEvent
	start  int // index of the oldest event
	count  int
	// oldest is the newest revision whose successors are all in the window: a watch may
	// resume from any rev >= oldest.
	oldest int64
}

func newEventWindow(size int) eventWindow {
	return eventWindow{events: make([]*cacheEvent, size)}
}

// reset empties the window; history now starts after rev.
func (w *eventWindow) reset(rev int64) {
	clear(w.events)
	w.start, w.count, w.oldest = 0, 0, rev
}

func (w *eventWindow) add(ev *cacheEvent) {
	if w.count == len(w.events) {
		// Drop the oldest event: resuming from before it is no longer possible.
		w.oldest = w.events[w.start].rev
		w.events[w.start] = nil
		w.start = (w.start + 1) % len(w.events)
		w.count--
	}
	w.events[(w.start+w.count)%len(w.events)] = ev
	w.count++
}

func (w *eventWindow) at(i int) *cacheEvent {
	return w.events[(w.start+i)%len(w.events)]
}

// since returns the events after rev; ok is false when some of them were already dropped.
func (w *eventWindow) since(rev int64) ([]*cacheEvent, bool) {
	if rev < w.oldest {
		return nil, false
	}
	first := sort.Search(w.count, func(i int) bool { return w.at(i).rev > rev })
	out := make([]*cacheEvent, 0, w.count-first)
	for i := first; i < w.count; i++ {
		out = append(out, w.at(i))
	}
	return out, true
}
