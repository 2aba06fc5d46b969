// Command benchsum compares the results of `critest -benchmark` for two runtimes, for
// test/critest/bench.sh.
//
//	benchsum -base containerd=DIR1 -runtime skiff=DIR2
//
// reads the *_benchmark_data.json files critest writes into each -benchmarking-output-dir
// (anywhere under DIR, so several rounds can be pooled) and prints, per operation (named after its CRI call), the median and 95th percentile of
// both runtimes and the ratio of the medians runtime/base (below 1: the runtime is faster).
package main
