#!/usr/bin/env bash
# bench.sh: `critest -benchmark` against containerd's own CRI plugin and against skiff's CRI
# server on the same containerd daemon, offline (`make bench-cri`).
#
# Same setup as run.sh (lib.sh: tools, stand-in images from a local registry, one
# containerd with its CRI plugin, `skiff cri` on that daemon). critest's pod, container and
# image lifecycle benchmarks run one sample at a time, in BENCH_ROUNDS rounds that alternate
# containerd and skiff (so that a noisy minute on a shared machine hits both); then
# benchsum prints, per CRI operation, the median and p95 of both and the ratio of the
# medians skiff/containerd (below 1: skiff is faster). Raw data:
# bin/critest/bench/RUNTIME/round-N/, the table: bin/critest/bench/summary.txt.
#
# Environment: BENCH_N samples per benchmark and round (default 10), BENCH_ROUNDS (default
# 2), CRITEST_SKIFF_NETWORK and CRITEST_KEEP as in run.sh.
set -euo pipefail

# shellcheck source=test/critest/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
prog=bench-cri
reports=$bin/critest/bench
samples=${BENCH_N:-10}
rounds=${BENCH_ROUNDS:-2}
[[ $samples =~ ^[1-9][0-9]*$ && $rounds =~ ^[1-9][0-9]*$ ]] || die "BENCH_N and BENCH_ROUNDS must be positive numbers"

# params: critest's benchmark settings; every image is a local stand-in, so nothing is
# pulled from the internet (the listing benchmark would otherwise use public.ecr.aws).
params() {
	cat >"$reports/params.yaml" <<-EOF
	containersNumber: $samples
	containersNumberParallel: 1
	containerBenchmarkTimeoutSeconds: 600
	podsNumber: $samples
	podsNumberParallel: 1
	podBenchmarkTimeoutSeconds: 600
	imagesNumber: $samples
	imagesNumberParallel: 1
	imageBenchmarkTimeoutSeconds: 600
	imagePullingBenchmarkImage: registry.k8s.io/e2e-test-images/busybox:1.29-2
	imageListingBenchmarkImages:
	  - registry.k8s.io/e2e-test-images/busybox:1.29-2
	podContainerStartBenchmarkTimeoutSeconds: 60
	EOF
}

# bench RUNTIME SOCKET ROUND: one round of benchmarks into bin/critest/bench/RUNTIME/round-ROUND.
bench() {
	local name=$1 sock=$2 out=$reports/$1/round-$3
	rm -rf "$out" && mkdir -p "$out"
	log "benchmarking $name, round $3 of $rounds ($samples samples per benchmark; output: $out/critest.log)"
	"$tools/critest" -benchmark -runtime-endpoint "unix://$sock" -image-endpoint "unix://$sock" \
		-benchmarking-params-file "$reports/params.yaml" -benchmarking-output-dir "$out" \
		-ginkgo.no-color -ginkgo.timeout=2h >"$out/critest.log" 2>&1 ||
		log "critest -benchmark against $name failed (see $out/critest.log)"
	compgen -G "$out/*_benchmark_data.json" >/dev/null || die "no benchmark data from $name"
}

main() {
	setup
	(cd "$repo" && go build -o "$tools/benchsum" ./test/critest/benchsum)
	params
	rm -rf "$reports/containerd" "$reports/skiff"
	start_skiff
	local round
	for round in $(seq "$rounds"); do
		bench containerd "$work/containerd.sock" "$round"
		remove_pods "$work/containerd.sock"
		bench skiff "$work/skiff.sock" "$round"
		remove_pods "$work/skiff.sock"
	done
	"$tools/benchsum" -base "containerd=$reports/containerd" -runtime "skiff=$reports/skiff" |
		tee "$reports/summary.txt"
}

main "$@"
