// Command junitsum summarises the JUnit reports critest (ginkgo) writes, for
// test/critest/run.sh.
//
//	junitsum REPORT.xml...
//
// prints "N passed, N failed, N skipped" and then one "FAIL <spec>" line per failed spec.
// Several reports of one runtime (a rerun that skips the specs that hung in the run before)
// are merged: each spec keeps the outcome of the last run that ran it.
//
//	junitsum -baseline BASE.xml... REPORT.xml...
//
// also prints "REGRESSION <spec>" for each spec that failed in REPORT but passed in BASE
// (the reference runtime), and exits 1 if there is one: the check behind "pass critest at
// least as well as containerd's own CRI plugin".
//
//	junitsum -hung REPORT.xml
//
// prints the specs ginkgo interrupted or timed out, as -ginkgo.skip patterns.
package main
