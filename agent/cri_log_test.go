package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTailCRILog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	var b strings.Builder
	for i := range 100 {
		fmt.Fprintf(&b, "2026-11-28T19:00:00.000000000Z stdout F line %d\n", i)
	}
	b.WriteString("2026-11-28T19:00:00.000000000Z stderr P part-\n")
	b.WriteString("2026-11-28T19:00:00.000000000Z stderr F one\n")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	got := tailCRILog(path, 3, 2048)
	if want := "line 98\nline 99\npart-one\n"; got != want {
		t.Errorf("tail = %q, want %q", got, want)
	}
	if got := tailCRILog(path, 80, 10); len(got) != 10 || !strings.HasSuffix(got, "part-one\n") {
		t.Errorf("byte-limited tail = %q", got)
	}
	if got := tailCRILog(filepath.Join(t.TempDir(), "missing"), 80, 2048); got != "" {
		t.Errorf("missing log gave %q", got)
	}
}
