package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestQuantile(t *testing.T) {
	var ds []time.Duration
	for i := 10; i >= 1; i-- { // unsorted on purpose
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	if got := quantile(ds, 0.5); got != 5*time.Millisecond {
		t.Errorf("median = %v, want 5ms", got)
	}
	if got := quantile(ds, 0.95); got != 10*time.Millisecond {
		t.Errorf("p95 = %v, want 10ms", got)
	}
	if got := quantile(nil, 0.5); got != 0 {
		t.Errorf("quantile of nothing = %v", got)
	}
	if ds[0] != 10*time.Millisecond {
		t.Error("quantile sorted its input in place")
	}
}

func writeSet(t *testing.T, dir, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "pod_benchmark_data.json"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReport(t *testing.T) {
	base, other := t.TempDir(), t.TempDir()
	writeSet(t, base, `{"operationsNames":["CreatePod","StopPod"],"numParallel":1,"datapoints":[
		{"operationsDurationsNs":[700000000,500000000]},{"operationsDurationsNs":[720000000,540000000]},
		{"operationsDurationsNs":[710000000,560000000]}]}`)
	writeSet(t, other, `{"operationsNames":["CreatePod","StopPod"],"datapoints":[
		{"operationsDurationsNs":[355000000,100000000]},{"operationsDurationsNs":[300000000,90000000]}]}`)
	var out strings.Builder
	if err := run(&out, "containerd="+base, "skiff="+other); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and 2 rows, got:\n%s", out.String())
	}
	fields := strings.Fields(lines[1])
	// RunPodSandbox 3 710.0 ms 720.0 ms 2 300.0 ms 355.0 ms 0.42
	if fields[0] != "RunPodSandbox" || fields[1] != "3" || fields[2] != "710.0" || fields[7] != "300.0" || fields[len(fields)-1] != "0.42" {
		t.Errorf("RunPodSandbox row: %q", lines[1])
	}
	if !strings.HasPrefix(strings.TrimSpace(lines[2]), "StopPodSandbox") {
		t.Errorf("second row: %q", lines[2])
	}
}

func TestMissingOutput(t *testing.T) {
	if err := run(&strings.Builder{}, "containerd="+t.TempDir(), "skiff="+t.TempDir()); err == nil {
		t.Error("no error for directories without benchmark data")
	}
	if err := run(&strings.Builder{}, "containerd", "skiff=/x"); err == nil {
		t.Error("no error for -base without a directory")
	}
}

func TestRoundsArePooled(t *testing.T) {
	base, other := t.TempDir(), t.TempDir()
	for i, body := range []string{
		`{"operationsNames":["RemoveContainer"],"datapoints":[{"operationsDurationsNs":[1000000]}]}`,
		`{"operationsNames":["RemoveContainer"],"datapoints":[{"operationsDurationsNs":[3000000]},{"operationsDurationsNs":[2000000]}]}`,
	} {
		dir := filepath.Join(base, "round-"+string(rune('1'+i)))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "container_benchmark_data.json"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeSet(t, other, `{"operationsNames":["RemoveContainer"],"datapoints":[{"operationsDurationsNs":[4000000]}]}`)
	var out strings.Builder
	if err := run(&out, "containerd="+base, "skiff="+other); err != nil {
		t.Fatal(err)
	}
	// 3 samples pooled from two rounds, median 2 ms; skiff 4 ms: ratio 2.00.
	row := strings.Fields(strings.Split(strings.TrimSpace(out.String()), "\n")[1])
	if row[1] != "3" || row[2] != "2.0" || row[len(row)-1] != "2.00" {
		t.Errorf("pooled row: %q", row)
	}
}
