package cri

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// capSysResource is CAP_SYS_RESOURCE's bit in the capability sets.
const capSysResource = 24

// oomPolicy decides the oom_score_adj a container may get. Lowering a score below
// our own needs CAP_SYS_RESOURCE; without it runc fails with an opaque "can't get
// final child's PID from pipe" error, so scores are clamped to our own instead.
type oomPolicy struct {
	own      int
	canLower bool
}

func newOOMPolicy() oomPolicy {
	p := oomPolicy{canLower: true}
	if data, err := os.ReadFile("/proc/self/oom_score_adj"); err == nil {
		p.own, _ = strconv.Atoi(strings.TrimSpace(string(data)))
	}
	if eff, ok := effectiveCaps(); ok {
		p.canLower = eff&(1<<capSysResource) != 0
	}
	return p
}

// clamp returns the score to put in a spec for a requested score.
func (p oomPolicy) clamp(score int) int {
	if !p.canLower && score < p.own {
		return p.own
	}
	return score
}

func effectiveCaps() (uint64, bool) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return caps, err == nil
		}
	}
	return 0, false
}
