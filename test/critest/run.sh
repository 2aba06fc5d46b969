#!/usr/bin/env bash
# run.sh: the CRI conformance suite (critest) against skiff's CRI server and, as the
# reference, against containerd's own CRI plugin, both offline (`make critest`).
#
# It builds critest and crictl (sigs.k8s.io/cri-tools, in a throwaway module), bin/skiff,
# bin/registry and the stand-ins of every image critest pulls (test/images/build.sh
# OUTDIR critest), serves them under their upstream names from a local registry that
# registry.k8s.io, gcr.io and k8s.gcr.io are mirrored to, starts one containerd with its CRI
# plugin enabled on its own root, state, socket and CNI network, and runs critest against
#   containerd  the daemon's CRI plugin (containerd namespace k8s.io), and
#   skiff       `skiff cri` on the same daemon (containerd namespace skiff-critest).
# It prints `critest <runtime>: N passed, N failed, N skipped` per runtime and the failed
# specs, and exits 1 if skiff fails a spec that containerd passes (the issue's bar).
# bin/critest/ gets RUNTIME-N.xml (JUnit), RUNTIME-N.critest.log (critest's output; N > 1
# only when a hung spec forced a rerun) and the daemons' logs (containerd.daemon.log,
# skiff.daemon.log, registry.log). Everything it starts (processes, mounts,
# bridges, iptables rules, network namespaces, pods) is removed on exit, failure included.
#
# Needs root, Go, containerd, runc and the CNI plugins (hack/install-deps.sh).
# Environment:
#   CRITEST_RUNTIMES  runtimes to run, in order (default "containerd skiff")
#   CRITEST_ARGS      extra critest flags, split at white space (so write a focus with
#                     dots for spaces): -ginkgo.focus=Streaming.*exec
#   CRITEST_KEEP=1    keep the work directory (daemon state and logs) under /tmp
#   CRITEST_STALL     seconds without critest output after which a spec counts as hung
#                     and is interrupted (default 300; the slowest spec waits 2 minutes)
#   CRITEST_SKIFF_NETWORK  generated (default): skiff's own generated CNI config; own: the
#                     same config under a network name no other skiff on the host uses
#                     (see lib.sh skiff_conflist; for busy development hosts)
set -euo pipefail

# shellcheck source=test/critest/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
runtimes=${CRITEST_RUNTIMES:-containerd skiff}
stall=${CRITEST_STALL:-300}
((stall > 0 && stall % 5 == 0)) || die "CRITEST_STALL must be a positive multiple of 5"

# --- critest -----------------------------------------------------------------------------

# run_critest RUNTIME SOCKET: the suite against one runtime. A spec that hangs (no output
# for $stall seconds: critest has no per-spec timeout, and e.g. an attach stream that never
# ends blocks it forever) is interrupted, which ends the run; the suite is then run again
# skipping the hung specs, up to 3 times. Run N writes bin/critest/RUNTIME-N.xml (JUnit) and
# RUNTIME-N.critest.log; junitsum merges them.
run_critest() {
	local name=$1 sock=$2 args skips=() n hung pat
	read -r -a args <<<"${CRITEST_ARGS:-}"
	rm -f "$reports/$name"-*.xml "$reports/$name"-*.critest.log
	for n in 1 2 3 4; do
		log "running critest against $name (run $n, output: $reports/$name-$n.critest.log)"
		critest_once "$name-$n" "$sock" "${args[@]}" "${skips[@]}"
		hung=$("$tools/junitsum" -hung "$reports/$name-$n.xml")
		[[ -n $hung ]] || return 0
		log "critest against $name: hung in $(tr '\n' ';' <<<"$hung"); running it again without"
		while read -r pat; do skips+=("-ginkgo.skip=$pat"); done <<<"$hung"
	done
}

# critest_once NAME SOCKET ARG...: one critest run with the stall watchdog.
critest_once() {
	local name=$1 sock=$2 pid size last=-1 quiet=0
	shift 2
	"$tools/critest" -runtime-endpoint "unix://$sock" -image-endpoint "unix://$sock" \
		-ginkgo.no-color -ginkgo.timeout=2h -ginkgo.junit-report="$reports/$name.xml" \
		"$@" >"$reports/$name.critest.log" 2>&1 &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		sleep 5
		size=$(stat -c %s "$reports/$name.critest.log")
		if ((size != last)); then
			last=$size quiet=0
			continue
		fi
		quiet=$((quiet + 5))
		if ((quiet == stall)); then
			log "critest ($name): no output for ${stall}s; interrupting the hung spec"
			kill -INT "$pid" 2>/dev/null || true
		elif ((quiet == stall + 120)); then
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done
	wait "$pid" || true # critest's status only says that some spec failed
	[[ -s $reports/$name.xml ]] || { tail -n 30 "$reports/$name.critest.log" >&2; die "critest ($name) wrote no report"; }
}

# summarize RUNTIME [BASELINE]: the one-line result and the failed specs.
summarize() {
	local name=$1 base=${2:-} out rc=0 baseline=() f
	if [[ -n $base ]]; then
		for f in "$reports/$base"-*.xml; do baseline+=(-baseline "$f"); done
	fi
	out=$("$tools/junitsum" "${baseline[@]}" "$reports/$name"-*.xml) || rc=$?
	((rc < 2)) || die "cannot read the reports of $name"
	echo "critest $name: $(head -n1 <<<"$out")"
	tail -n +2 <<<"$out" | sed 's/^/  /'
	return "$rc"
}

main() {
	setup
	local rt
	for rt in $runtimes; do
		case $rt in
		containerd) run_critest containerd "$work/containerd.sock"; remove_pods "$work/containerd.sock" ;;
		skiff)
			start_skiff
			run_critest skiff "$work/skiff.sock"
			remove_pods "$work/skiff.sock"
			;;
		*) die "unknown runtime $rt (want containerd or skiff)" ;;
		esac
	done
	local rc=0
	for rt in $runtimes; do
		if [[ $rt == skiff && " $runtimes " == *" containerd "* ]]; then
			summarize skiff containerd || rc=1
		else
			summarize "$rt"
		fi
	done
	((rc == 0)) || log "skiff fails specs that containerd's CRI plugin passes (REGRESSION lines above)"
	return "$rc"
}

main "$@"
