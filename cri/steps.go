package cri

import "time"

// steps records how long each step of one RPC took, for the log line that ends the RPC:
// a wall-clock profile of where a RunPodSandbox's time goes, readable from `-v 2` logs.
type steps struct {
	last time.Time
	kv   []any
}

func newSteps() *steps { return &steps{last: time.Now()} }

// done closes the step that ran since the previous one under name.
func (s *steps) done(name string) {
	now := time.Now()
	s.kv = append(s.kv, name, now.Sub(s.last).Round(10*time.Microsecond).String())
	s.last = now
}

// keysAndValues is the recorded steps as klog key/value pairs.
func (s *steps) keysAndValues() []any { return s.kv }

// record adds a step timed elsewhere (one that ran beside the others).
func (s *steps) record(name string, took time.Duration) {
	s.kv = append(s.kv, name, took.Round(10*time.Microsecond).String())
}
