# shellcheck shell=bash
# lib.sh: what run.sh (conformance) and bench.sh (benchmarks) share: building the tools and
# images, the local registry, one containerd with its CRI plugin, `skiff cri` on the same
# daemon, and the cleanup of all of it. Sourced, not run.
#
# A script sets `reports` (where logs go) and then calls setup; the runtimes' CRI sockets
# are "$work/containerd.sock" and, after start_skiff, "$work/skiff.sock".

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin=$repo/bin
tools=$bin/tools
reports=$bin/critest
images=$bin/images
CRI_TOOLS_VERSION=v1.37.0
export GOTOOLCHAIN=local CGO_ENABLED=0

# Names, ranges and namespaces of this harness only, so that it never touches what another
# test or a real node on the host uses.
ctd_net=skiff-critest-ctd ctd_bridge=sct-ctd0 ctd_cidr=10.231.0.0/24
skiff_bridge=sct-skf0 skiff_cidr=10.232.0.0/24 skiff_ns=skiff-critest skiff_net=skiff-critest-skf
pause_image=registry.k8s.io/pause:3.10 # skiff's default; containerd's sandbox_image

log() { echo "${prog:-critest}: $*" >&2; }
die() { log "$*"; exit 1; }

# build_cri_tools: critest and crictl of $CRI_TOOLS_VERSION into bin/tools, built in a
# throwaway module so that the project's go.mod never requires cri-tools.
build_cri_tools() {
	local stamp=$tools/.cri-tools-$CRI_TOOLS_VERSION mod
	[[ -x $tools/critest && -x $tools/crictl && -f $stamp ]] && return
	log "building critest and crictl $CRI_TOOLS_VERSION"
	mkdir -p "$tools"
	mod=$(mktemp -d)
	# One && chain: `set -e` does not apply inside a subshell that is the left side of ||.
	# critest is a test binary: -t fetches its test-only dependencies too.
	(
		cd "$mod" &&
			go mod init critest.build >/dev/null 2>&1 &&
			go get -t "sigs.k8s.io/cri-tools/cmd/critest@$CRI_TOOLS_VERSION" \
				"sigs.k8s.io/cri-tools/cmd/crictl@$CRI_TOOLS_VERSION" >&2 &&
			go test -c -o "$tools/critest" sigs.k8s.io/cri-tools/cmd/critest &&
			go build -trimpath -o "$tools/crictl" sigs.k8s.io/cri-tools/cmd/crictl
	) || { rm -rf "$mod"; die "building cri-tools failed"; }
	rm -rf "$mod"
	touch "$stamp"
}

# build: the tools, skiff, the registry, junitsum and the images, before anything starts.
build() {
	build_cri_tools
	make -C "$repo" --no-print-directory "$bin/skiff" "$bin/registry" >&2
	(cd "$repo" && go build -o "$tools/junitsum" ./test/critest/junitsum)
	"$repo/test/images/build.sh" "$images" critest
}

# --- processes and cleanup -------------------------------------------------------------

work='' registry_pid='' containerd_pid='' skiff_pid=''

# stop_pid PID NAME: SIGTERM, then SIGKILL after 20 s.
stop_pid() {
	local pid=$1
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 200); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && { log "$2 did not stop; killing it"; kill -KILL "$pid" 2>/dev/null || true; }
	wait "$pid" 2>/dev/null || true
}

# remove_pods ENDPOINT: every pod sandbox of a runtime stopped and removed, so that the
# runtime tears down its netns, CNI attachments (veths, iptables rules) and shims itself.
remove_pods() {
	[[ -S $1 ]] || return 0
	timeout 120 "$tools/crictl" --runtime-endpoint "unix://$1" --image-endpoint "unix://$1" \
		--timeout 60s rmp --all --force >/dev/null 2>&1 || log "removing the pods of $1 failed"
}

# kill_shims: containerd shims of our daemon outlive it; they are found by its socket.
kill_shims() {
	local pid
	for pid in $(pgrep -f -- "-address $work/containerd.sock( |$)" || true); do
		kill -KILL "$pid" 2>/dev/null || true
	done
}

# kill_pause_holders: skiff starts a pause process itself for each pod sharing a PID
# namespace; they are not containerd's, and outlive a skiff that did not remove its pods.
# They are found by their binary, which is under the work directory.
kill_pause_holders() {
	local exe
	for exe in /proc/[0-9]*/exe; do
		[[ $(readlink "$exe" 2>/dev/null) == "$work"/* ]] && kill -KILL "$(basename "$(dirname "$exe")")" 2>/dev/null
	done
	return 0
}

# sweep_iptables TABLE: rules tagged with our CNI network names (left if a CNI DEL never
# ran; skiff's generated network is named after its bridge and keeps one masquerade chain
# for its pod CIDR) and the chains they jump to. iptables-save escapes the quotes of the
# comment ("name: \"x\" ..."), which the pattern allows for.
sweep_iptables() {
	local table=$1 rule chains=() c
	while read -r rule; do
		[[ $rule =~ -j\ (CNI-[A-Za-z0-9-]+) ]] && chains+=("${BASH_REMATCH[1]}")
		eval "iptables -w -t $table -D ${rule#-A }" 2>/dev/null || true
	done < <(iptables-save -t "$table" 2>/dev/null |
		grep -E "name: \\\\?\"($ctd_net|$skiff_net|$skiff_bridge)\\\\?\"" | grep '^-A ' || true)
	for c in "${chains[@]}"; do
		# Chains every CNI user on the host shares are left alone.
		[[ $c == CNI-HOSTPORT-* || $c == CNI-FORWARD || $c == CNI-ADMIN ]] && continue
		iptables -w -t "$table" -F "$c" 2>/dev/null || continue
		iptables -w -t "$table" -X "$c" 2>/dev/null || true
	done
}

# sweep_idle_portmap: portmap's chains, which every CNI network on the host shares, once no
# container of any of them maps a host port (as skiff's network.Cleanup does).
sweep_idle_portmap() {
	iptables-save -t nat 2>/dev/null | grep -q '^-A CNI-HOSTPORT-DNAT ' && return 0
	local rule c
	while read -r rule; do
		eval "iptables -w -t nat -D ${rule#-A }" 2>/dev/null || true
	done < <(iptables-save -t nat 2>/dev/null | grep -E '^-A (PREROUTING|OUTPUT|POSTROUTING) .*-j CNI-HOSTPORT-' || true)
	for c in CNI-HOSTPORT-DNAT CNI-HOSTPORT-MASQ CNI-HOSTPORT-SETMARK; do
		iptables -w -t nat -F "$c" 2>/dev/null && iptables -w -t nat -X "$c" 2>/dev/null
	done
	return 0
}

# unmount_work: whatever is still mounted under the work directory (netns bind mounts,
# rootfs overlays, shm), deepest first.
unmount_work() {
	local m
	while read -r m; do
		umount -l "$m" 2>/dev/null || true
	done < <(awk -v w="$work/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r)
}

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	[[ -n $work ]] || exit "$rc"
	log "cleaning up"
	[[ -n $skiff_pid ]] && remove_pods "$work/skiff.sock"
	stop_pid "$skiff_pid" skiff
	[[ -n $containerd_pid ]] && remove_pods "$work/containerd.sock"
	stop_pid "$containerd_pid" containerd
	kill_shims
	kill_pause_holders
	stop_pid "$registry_pid" registry
	# containerd 1.6 keeps pod netns under /var/run/netns; those of its pods are gone with
	# the pods. Ours are the only ones named in its state, and the state is gone now.
	sweep_iptables nat
	sweep_iptables filter
	sweep_idle_portmap
	local br
	for br in "$ctd_bridge" "$skiff_bridge"; do
		ip link show "$br" >/dev/null 2>&1 && ip link delete "$br"
	done
	unmount_work
	# The default cgroup parent of skiff's pods (/<containerd namespace>), which runc and
	# skiff create and nothing removes; only if empty.
	local h
	for h in /sys/fs/cgroup/ /sys/fs/cgroup/*/; do # cgroup v2, then each v1 hierarchy
		rmdir "$h$skiff_ns" 2>/dev/null
	done
	if [[ ${CRITEST_KEEP:-} == 1 ]]; then
		log "kept $work"
	else
		rm -rf "$work"
	fi
	exit "$rc"
}

# wait_socket PATH PID NAME LOG: PATH answers within 60 s while PID lives.
wait_socket() {
	for _ in $(seq 600); do
		kill -0 "$2" 2>/dev/null || { tail -n 20 "$4" >&2; die "$3 exited during startup (log: $4)"; }
		[[ -S $1 ]] && "$tools/crictl" --runtime-endpoint "unix://$1" --timeout 2s version >/dev/null 2>&1 && return
		sleep 0.1
	done
	die "$3 did not answer on $1 (log: $4)"
}

# --- the registry ------------------------------------------------------------------------

start_registry() {
	local args=() line
	while read -r line; do
		args+=(--image "$line")
	done <"$images/critest/images.txt"
	# k8s.gcr.io/pause:3.9 is the same image at the same path as registry.k8s.io/pause:3.9.
	"$bin/registry" --addr 127.0.0.1:0 --hosts-dir "$work/certs.d" --mirror-host k8s.gcr.io \
		"${args[@]}" >"$work/registry.ready" 2>"$reports/registry.log" &
	registry_pid=$!
	for _ in $(seq 300); do
		grep -q ready "$work/registry.ready" 2>/dev/null && return
		kill -0 "$registry_pid" 2>/dev/null || break
		sleep 0.1
	done
	cat "$reports/registry.log" >&2
	die "registry did not start"
}

# --- containerd with its CRI plugin --------------------------------------------------------

containerd_config() {
	mkdir -p "$work/cni"
	cat >"$work/cni/10-$ctd_net.conflist" <<-EOF
	{
	  "cniVersion": "1.0.0",
	  "name": "$ctd_net",
	  "plugins": [
	    {
	      "type": "bridge", "bridge": "$ctd_bridge", "isGateway": true, "ipMasq": true, "hairpinMode": true,
	      "ipam": {"type": "host-local", "ranges": [[{"subnet": "$ctd_cidr"}]], "routes": [{"dst": "0.0.0.0/0"}],
	               "dataDir": "$work/ipam"}
	    },
	    {"type": "portmap", "capabilities": {"portMappings": true}}
	  ]
	}
	EOF
	cat >"$work/containerd.toml" <<-EOF
	version = 2
	root = "$work/containerd/root"
	state = "$work/containerd/state"

	[grpc]
	  address = "$work/containerd.sock"
	[ttrpc]
	  address = "$work/containerd.sock.ttrpc"
	[debug]
	  address = ""
	  level = "info"
	[metrics]
	  address = ""

	[plugins."io.containerd.internal.v1.opt"]
	  path = "$work/containerd/opt"
	[plugins."io.containerd.grpc.v1.cri"]
	  sandbox_image = "$pause_image"
	  # root here lacks CAP_SYS_RESOURCE: a negative oom_score_adj would fail every container.
	  restrict_oom_score_adj = true
	  stream_server_address = "127.0.0.1"
	  stream_server_port = "0"
	  [plugins."io.containerd.grpc.v1.cri".containerd]
	    default_runtime_name = "runc"
	    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
	      runtime_type = "io.containerd.runc.v2"
	      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
	        Root = "$work/containerd/runc"
	  [plugins."io.containerd.grpc.v1.cri".cni]
	    bin_dir = "/usr/lib/cni"
	    conf_dir = "$work/cni"
	    max_conf_num = 1
	  [plugins."io.containerd.grpc.v1.cri".registry]
	    config_path = "$work/certs.d"
	EOF
}

start_containerd() {
	containerd_config
	containerd --config "$work/containerd.toml" >"$reports/containerd.daemon.log" 2>&1 &
	containerd_pid=$!
	wait_socket "$work/containerd.sock" "$containerd_pid" containerd "$reports/containerd.daemon.log"
}

# skiff_conflist: with CRITEST_SKIFF_NETWORK=own, skiff gets the conflist it would generate
# (network/conflist.go) under a network name of its own. Every skiff on a host otherwise
# uses the network name "skiff", and `skiff reset` of any of them (other tests on a shared
# development host) deletes the iptables rules of all of them, failing our pods' CNI DEL.
skiff_conflist() {
	mkdir -p "$work/skiff-cni"
	cat >"$work/skiff-cni/10-$skiff_net.conflist" <<-EOF
	{
	  "cniVersion": "1.0.0",
	  "name": "$skiff_net",
	  "plugins": [
	    {
	      "type": "bridge", "bridge": "$skiff_bridge", "isGateway": true, "ipMasq": true, "hairpinMode": true,
	      "ipam": {"type": "host-local", "ranges": [[{"subnet": "$skiff_cidr"}]], "routes": [{"dst": "0.0.0.0/0"}],
	               "dataDir": "$work/skiff-ipam"}
	    },
	    {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
	  ]
	}
	EOF
}

start_skiff() {
	local net=()
	case ${CRITEST_SKIFF_NETWORK:-generated} in
	generated) ;;
	own) skiff_conflist && net=(--cni-conf-dir "$work/skiff-cni") ;;
	*) die "CRITEST_SKIFF_NETWORK must be generated or own" ;;
	esac
	"$bin/skiff" cri --data-dir "$work/skiff/data" --run-dir "$work/skiff/run" \
		--cri-socket "$work/skiff.sock" --containerd "$work/containerd.sock" \
		--containerd-namespace "$skiff_ns" --registry-config "$work/certs.d" \
		--bridge-name "$skiff_bridge" --pod-cidr "$skiff_cidr" --pause-image "$pause_image" \
		"${net[@]}" >"$reports/skiff.daemon.log" 2>&1 &
	skiff_pid=$!
	wait_socket "$work/skiff.sock" "$skiff_pid" skiff "$reports/skiff.daemon.log"
}

# setup: checks, builds, and starts the registry and containerd; cleanup runs on exit.
setup() {
	[[ $(id -u) == 0 ]] || die "must run as root"
	local tool
	for tool in go containerd runc iptables iptables-save ip pgrep; do
		command -v "$tool" >/dev/null || die "needs $tool (hack/install-deps.sh installs it)"
	done
	[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/portmap ]] || die "needs the CNI plugins in /usr/lib/cni"
	build
	mkdir -p "$reports"
	work=$(mktemp -d /tmp/skiff-critest.XXXXXX)
	trap cleanup EXIT
	trap 'exit 130' INT TERM
	start_registry
	start_containerd
}
