package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// resultsSet is the part of critest's LifecycleBenchmarksResultsSet (pkg/benchmark) that
// benchsum reads: one duration per operation per sample.
type resultsSet struct {
	OperationsNames []string `json:"operationsNames"`
	Datapoints      []struct {
		OperationsDurationsNs []int64 `json:"operationsDurationsNs"`
	} `json:"datapoints"`
}

// criNames maps critest's operation names to the CRI calls they time.
var criNames = map[string]string{
	"CreatePod":       "RunPodSandbox",
	"StatusPod":       "PodSandboxStatus",
	"StopPod":         "StopPodSandbox",
	"RemovePod":       "RemovePodSandbox",
	"StatusContainer": "ContainerStatus",
	"StatusImage":     "ImageStatus",
	"ListImages":      "ListImages",
}

func criName(op string) string {
	if n, ok := criNames[op]; ok {
		return n
	}
	return op
}

// samples maps an operation to its durations, in the order operations were first seen.
type samples struct {
	order []string
	byOp  map[string][]time.Duration
}

// load reads every benchmark data file under one runtime's output directory (a
// subdirectory per round).
func load(dir string) (*samples, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, "_benchmark_data.json") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no *_benchmark_data.json under %s", dir)
	}
	s := &samples{byOp: map[string][]time.Duration{}}
	for _, f := range files { // WalkDir visits in lexical order
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var rs resultsSet
		if err := json.Unmarshal(data, &rs); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, dp := range rs.Datapoints {
			for i, ns := range dp.OperationsDurationsNs {
				if i >= len(rs.OperationsNames) {
					break
				}
				s.add(criName(rs.OperationsNames[i]), time.Duration(ns))
			}
		}
	}
	return s, nil
}

func (s *samples) add(op string, d time.Duration) {
	if _, ok := s.byOp[op]; !ok {
		s.order = append(s.order, op)
	}
	s.byOp[op] = append(s.byOp[op], d)
}

// quantile is the nearest-rank q-quantile of ds (0 < q <= 1); ds need not be sorted.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	rank := int(float64(len(sorted))*q+0.999999) - 1
	return sorted[max(0, min(rank, len(sorted)-1))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// report writes the comparison table: operations of base first, then any only run has.
func report(w io.Writer, baseName string, base *samples, runName string, run *samples) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "operation\tn\t%[1]s median\t%[1]s p95\tn\t%[2]s median\t%[2]s p95\t%[2]s/%[1]s\t\n", baseName, runName)
	ops := slices.Clone(base.order)
	for _, op := range run.order {
		if !slices.Contains(ops, op) {
			ops = append(ops, op)
		}
	}
	for _, op := range ops {
		b, r := base.byOp[op], run.byOp[op]
		ratio := "-"
		if bm, rm := quantile(b, 0.5), quantile(r, 0.5); bm > 0 && len(r) > 0 {
			ratio = fmt.Sprintf("%.2f", float64(rm)/float64(bm))
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\t%s\t%s\t\n", op,
			len(b), ms(quantile(b, 0.5)), ms(quantile(b, 0.95)),
			len(r), ms(quantile(r, 0.5)), ms(quantile(r, 0.95)), ratio)
	}
	return tw.Flush()
}

func parseNamed(v string) (string, string, error) {
	name, dir, ok := strings.Cut(v, "=")
	if !ok || name == "" || dir == "" {
		return "", "", errors.New("want NAME=DIR")
	}
	return name, dir, nil
}

func main() {
	baseFlag := flag.String("base", "", "NAME=DIR of the reference runtime's benchmark output")
	runFlag := flag.String("runtime", "", "NAME=DIR of the compared runtime's benchmark output")
	flag.Parse()
	if err := run(os.Stdout, *baseFlag, *runFlag); err != nil {
		fmt.Fprintln(os.Stderr, "benchsum:", err)
		os.Exit(1)
	}
}

func run(w io.Writer, baseFlag, runFlag string) error {
	baseName, baseDir, err := parseNamed(baseFlag)
	if err != nil {
		return fmt.Errorf("-base: %w", err)
	}
	runName, runDir, err := parseNamed(runFlag)
	if err != nil {
		return fmt.Errorf("-runtime: %w", err)
	}
	base, err := load(baseDir)
	if err != nil {
		return err
	}
	r, err := load(runDir)
	if err != nil {
		return err
	}
	return report(w, baseName, base, runName, r)
}
