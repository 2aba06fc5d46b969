package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const skiffReport = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="5" disabled="0" errors="0" failures="2" time="12.5">
  <testsuite name="CRI validation" package="/x" tests="5" disabled="0" skipped="1" errors="0" failures="2" time="12.5">
    <testcase name="[BeforeSuite]" classname="CRI validation" status="passed" time="0.1"></testcase>
    <testcase name="[It] [k8s.io] Image Manager public image with tag should be pulled and removed [Conformance]" classname="CRI validation" status="passed" time="1"></testcase>
    <testcase name="[It] [k8s.io] Streaming runtime should support exec [Conformance]" classname="CRI validation" status="failed" time="2"><failure message="boom" type="failed">x</failure></testcase>
    <testcase name="[It] [k8s.io] Image Manager public image with digest should be pulled and removed [Conformance]" classname="CRI validation" status="failed" time="2"><failure message="no such image" type="failed">x</failure></testcase>
    <testcase name="[It] [k8s.io] Security Context SeccompProfile should support seccomp" classname="CRI validation" status="skipped" time="0"><skipped message="skipped"></skipped></testcase>
    <testcase name="[AfterSuite]" classname="CRI validation" status="passed" time="0.1"></testcase>
  </testsuite>
</testsuites>`

const containerdReport = `<testsuites><testsuite>
    <testcase name="[It] [k8s.io] Image Manager public image with tag should be pulled and removed [Conformance]" status="passed"></testcase>
    <testcase name="[It] [k8s.io] Streaming runtime should support exec [Conformance]" status="passed"></testcase>
    <testcase name="[It] [k8s.io] Image Manager public image with digest should be pulled and removed [Conformance]" status="failed"><failure/></testcase>
</testsuite></testsuites>`

func write(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSummary(t *testing.T) {
	var out strings.Builder
	code, err := run(&out, nil, []string{write(t, "skiff.xml", skiffReport)})
	if err != nil || code != 0 {
		t.Fatalf("run: code %d, err %v", code, err)
	}
	want := "1 passed, 2 failed, 1 skipped\n" +
		"FAIL [k8s.io] Image Manager public image with digest should be pulled and removed [Conformance]\n" +
		"FAIL [k8s.io] Streaming runtime should support exec [Conformance]\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}

func TestBaselineRegression(t *testing.T) {
	var out strings.Builder
	code, err := run(&out, []string{write(t, "containerd.xml", containerdReport)}, []string{write(t, "skiff.xml", skiffReport)})
	if err != nil {
		t.Fatal(err)
	}
	if code != 1 {
		t.Errorf("exit code %d, want 1 (exec passed on the baseline)", code)
	}
	if !strings.Contains(out.String(), "REGRESSION [k8s.io] Streaming runtime should support exec [Conformance]\n") {
		t.Errorf("exec regression not reported:\n%s", out.String())
	}
	if strings.Contains(out.String(), "REGRESSION [k8s.io] Image Manager public image with digest") {
		t.Errorf("a spec that failed on the baseline too is reported as a regression:\n%s", out.String())
	}
}

func TestSuiteNodeFailureCounts(t *testing.T) {
	s, err := parse(strings.NewReader(`<testsuites><testsuite>
		<testcase name="[BeforeSuite]" status="failed"><failure/></testcase>
		<testcase name="[It] a" status="skipped"></testcase>
	</testsuite></testsuites>`))
	if err != nil {
		t.Fatal(err)
	}
	if s.count(failed) != 1 || s.count(skipped) != 1 {
		t.Errorf("got %d failed, %d skipped; want 1 and 1", s.count(failed), s.count(skipped))
	}
}

func TestRerunAfterHang(t *testing.T) {
	first := write(t, "skiff-1.xml", `<testsuites><testsuite>
		<testcase name="[It] a passes" status="passed"></testcase>
		<testcase name="[It] b (hangs) [Conformance]" status="interrupted"><failure/></testcase>
		<testcase name="[It] c" status="skipped"><skipped/></testcase>
	</testsuite></testsuites>`)
	second := write(t, "skiff-2.xml", `<testsuites><testsuite>
		<testcase name="[It] a passes" status="passed"></testcase>
		<testcase name="[It] b (hangs) [Conformance]" status="skipped"><skipped/></testcase>
		<testcase name="[It] c" status="failed"><failure/></testcase>
	</testsuite></testsuites>`)
	var out strings.Builder
	if err := hung(&out, first); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != `b \(hangs\) \[Conformance\]`+"\n" {
		t.Errorf("hung specs: %q", got)
	}
	out.Reset()
	if _, err := run(&out, nil, []string{first, second}); err != nil {
		t.Fatal(err)
	}
	want := "1 passed, 2 failed, 0 skipped\nFAIL b (hangs) [Conformance]\nFAIL c\n"
	if out.String() != want {
		t.Errorf("merged:\n%s\nwant\n%s", out.String(), want)
	}
}
