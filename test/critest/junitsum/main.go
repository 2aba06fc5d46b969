package main

import (
	"encoding/xml"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

// testCase is the part of a ginkgo v2 JUnit test case junitsum reads. Ginkgo records the
// spec's outcome in the status attribute (passed, failed, skipped, pending, panicked,
// interrupted, timedout, aborted); failure and error elements are kept for other writers.
type testCase struct {
	Name    string    `xml:"name,attr"`
	Status  string    `xml:"status,attr"`
	Failure *struct{} `xml:"failure"`
	Error   *struct{} `xml:"error"`
	Skipped *struct{} `xml:"skipped"`
}

type report struct {
	Cases []testCase `xml:"testsuite>testcase"`
}

// outcome is a spec's result reduced to what the summary counts.
type outcome int

const (
	passed outcome = iota
	failed
	skipped
)

// summary maps each spec ("[It] ..." test case) to its outcome. Suite-level nodes
// (BeforeSuite, AfterSuite, ReportAfterSuite) are not specs; a failure in one is counted
// as a failed spec under its own name so that it is not lost.
type summary map[string]outcome

func parse(r io.Reader) (summary, error) {
	var rep report
	if err := xml.NewDecoder(r).Decode(&rep); err != nil {
		return nil, fmt.Errorf("decode JUnit report: %w", err)
	}
	s := summary{}
	for _, c := range rep.Cases {
		o := classify(c)
		if !strings.HasPrefix(c.Name, "[It]") && o != failed {
			continue
		}
		s[strings.TrimSpace(strings.TrimPrefix(c.Name, "[It]"))] = o
	}
	return s, nil
}

func classify(c testCase) outcome {
	switch c.Status {
	case "passed":
		return passed
	case "skipped", "pending":
		return skipped
	case "":
		// Not written by ginkgo: fall back to the child elements.
		switch {
		case c.Failure != nil || c.Error != nil:
			return failed
		case c.Skipped != nil:
			return skipped
		}
		return passed
	}
	return failed
}

func (s summary) count(o outcome) int {
	n := 0
	for _, v := range s {
		if v == o {
			n++
		}
	}
	return n
}

// names lists the specs with outcome o, sorted.
func (s summary) names(o outcome) []string {
	var out []string
	for name, v := range s {
		if v == o {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// regressions lists the specs that failed in s but passed in base, sorted.
func (s summary) regressions(base summary) []string {
	var out []string
	for _, name := range s.names(failed) {
		if o, ok := base[name]; ok && o == passed {
			out = append(out, name)
		}
	}
	return out
}

func load(path string) (summary, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s, err := parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// loadAll merges the reports of several critest runs against one runtime, in order: a spec
// takes its outcome from the last run that ran it (a run skips the specs that hung in an
// earlier one, and an interrupted run skips everything after the hung spec).
func loadAll(paths []string) (summary, error) {
	merged := summary{}
	for _, p := range paths {
		s, err := load(p)
		if err != nil {
			return nil, err
		}
		for name, o := range s {
			if prev, ok := merged[name]; !ok || o != skipped || prev == skipped {
				merged[name] = o
			}
		}
	}
	return merged, nil
}

// hung writes, as anchored regular expressions for -ginkgo.skip, the specs ginkgo
// interrupted or timed out in the report.
func hung(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var rep report
	if err := xml.NewDecoder(f).Decode(&rep); err != nil {
		return fmt.Errorf("%s: decode JUnit report: %w", path, err)
	}
	for _, c := range rep.Cases {
		switch c.Status {
		case "interrupted", "timedout", "aborted":
			if name, ok := strings.CutPrefix(c.Name, "[It] "); ok {
				fmt.Fprintf(w, "%s\n", regexp.QuoteMeta(name))
			}
		}
	}
	return nil
}

func run(w io.Writer, baselines, paths []string) (int, error) {
	s, err := loadAll(paths)
	if err != nil {
		return 2, err
	}
	fmt.Fprintf(w, "%d passed, %d failed, %d skipped\n", s.count(passed), s.count(failed), s.count(skipped))
	for _, name := range s.names(failed) {
		fmt.Fprintf(w, "FAIL %s\n", name)
	}
	if len(baselines) == 0 {
		return 0, nil
	}
	base, err := loadAll(baselines)
	if err != nil {
		return 2, err
	}
	reg := s.regressions(base)
	for _, name := range reg {
		fmt.Fprintf(w, "REGRESSION %s\n", name)
	}
	if len(reg) > 0 {
		return 1, nil
	}
	return 0, nil
}

func main() {
	var baselines listFlag
	flag.Var(&baselines, "baseline", "JUnit report of the reference runtime (repeatable); exit 1 if a spec it passed failed here")
	hungOnly := flag.Bool("hung", false, "only print the interrupted or timed-out specs of one report, as -ginkgo.skip patterns")
	flag.Parse()
	if flag.NArg() < 1 || (*hungOnly && flag.NArg() != 1) {
		fmt.Fprintln(os.Stderr, "usage: junitsum [-baseline BASE.xml]... REPORT.xml...\n       junitsum -hung REPORT.xml")
		os.Exit(2)
	}
	if *hungOnly {
		if err := hung(os.Stdout, flag.Arg(0)); err != nil {
			fmt.Fprintln(os.Stderr, "junitsum:", err)
			os.Exit(2)
		}
		return
	}
	code, err := run(os.Stdout, baselines, flag.Args())
	if err != nil {
		fmt.Fprintln(os.Stderr, "junitsum:", err)
	}
	os.Exit(code)
}
