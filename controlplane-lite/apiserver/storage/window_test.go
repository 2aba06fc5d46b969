package storage

import "testing"

func TestEventWindow(t *testing.T) {
	w := newEventWindow(3)
	w.reset(10)
	if evs, ok := w.since(10); !ok || len(evs) != 0 {
		t.Fatalf("empty window since its start: %v %v", evs, ok)
	}
	if _, ok := w.since(9); ok {
		t.Fatal("an empty window served history from before its start")
	}
	for rev := int64(11); rev <= 15; rev++ {
		w.add(&cacheEvent{rev: rev})
	}
	// 11 and 12 were dropped; 13..15 remain, so resuming from 12 or later works.
	if _, ok := w.since(11); ok {
		t.Error("resume from 11 needs event 12, which was dropped")
	}
	for from, want := range map[int64][]int64{12: {13, 14, 15}, 13: {14, 15}, 15: nil, 20: nil} {
		evs, ok := w.since(from)
		if !ok || len(evs) != len(want) {
			t.Errorf("since(%d) = %d events, %v; want %v", from, len(evs), ok, want)
			continue
		}
		for i, ev := range evs {
			if ev.rev != want[i] {
				t.Errorf("since(%d)[%d] = %d, want %d", from, i, ev.rev, want[i])
			}
		}
	}
}
