#!/usr/bin/env bash
# A skiff cluster of N nodes on one machine.
#
#   lab.sh up N     start it: one `skiff server` and a registry mirror in the root network
#                   namespace, N `skiff agent`s each in a network namespace of its own (own
#                   containerd, data and run dirs, pod bridge and pod CIDR), all joined by veth
#                   pairs to one lab bridge, the way VMs sit on one L2 network
#   lab.sh check N  check a running lab: the seed's ReplicaSet scaled to 2N spreads over every
#                   node, and pods reach pods on other nodes (from a node and from a pod)
#   lab.sh test N   up, check, and down again whatever happens
#   lab.sh down     stop everything and remove every namespace, link, rule, mount and dir
#   lab.sh env      print the KUBECONFIG line for a running lab
#
# Topology (defaults; every name carries LAB_PREFIX, so a lab never touches anything else):
#
#   root netns: bridge skl-br 10.241.0.1/24, skiff server :<free port>, registry :<free port>
#   netns skl-n<i>: eth0 10.241.0.<10+i>/24 (veth peer skl-v<i> on skl-br), default route via
#                   10.241.0.1, skiff agent --node-name skl-n<i> --pod-cidr 10.242.<i>.0/24
#                   with pod bridge skl-p<i>; routes to the other nodes' pod CIDRs come from the
#                   agent's node-routes controller.
#
# Environment: LAB_PREFIX (skl), LAB_NET (10.241.0), LAB_POD_NET (10.242), LAB_DIR
# (/tmp/skiff-lab-<prefix>), SKIFF_BIN (bin/skiff), REGISTRY_BIN (bin/registry),
# SKIFF_IMAGES (bin/images), KUBECTL (kubectl).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
P=${LAB_PREFIX:-skl}
NET=${LAB_NET:-10.241.0}
POD_NET=${LAB_POD_NET:-10.242}
LAB_DIR=${LAB_DIR:-/tmp/skiff-lab-$P}
SKIFF_BIN=${SKIFF_BIN:-$repo/bin/skiff}
REGISTRY_BIN=${REGISTRY_BIN:-$repo/bin/registry}
SKIFF_IMAGES=${SKIFF_IMAGES:-$repo/bin/images}
KUBECTL=${KUBECTL:-kubectl}

BRIDGE=$P-br
GATEWAY=$NET.1
FORWARD_COMMENT="skiff-lab $P: forward between lab nodes"
KUBECONFIG_FILE=$LAB_DIR/admin.kubeconfig

log() { printf 'lab: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

node_name() { echo "$P-n$1"; }
node_ip() { echo "$NET.$((10 + $1))"; }
pod_cidr() { echo "$POD_NET.$1.0/24"; }

# free_port PORT: the first TCP port from PORT up that nothing listens on.
free_port() {
	local port=$1
	while [[ -n $(ss -Htln "sport = :$port") ]]; do port=$((port + 1)); done
	echo "$port"
}

# start NAME CMD...: run CMD in a session of its own, logging to LAB_DIR/NAME.log; the pid
# file is how `down` finds it (and only it) again.
start() {
	local name=$1; shift
	setsid "$@" >"$LAB_DIR/$name.log" 2>&1 </dev/null &
	echo $! >"$LAB_DIR/pids/$name.pid"
}

# stop NAME: SIGTERM, then SIGKILL to its session after 30s.
stop() {
	local file=$LAB_DIR/pids/$1.pid pid
	[[ -f $file ]] || return 0
	pid=$(<"$file")
	if kill -TERM "$pid" 2>/dev/null; then
		for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		if kill -0 "$pid" 2>/dev/null; then
			log "$1 (pid $pid) ignored SIGTERM for 30s; killing its session"
			kill -KILL -- "-$pid" 2>/dev/null || true
		fi
	fi
	rm -f "$file"
}

kc() { "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" --cache-dir "$LAB_DIR/kube-cache" "$@"; }

# check_alive: fail at once when a process the lab started has exited.
check_alive() {
	local file
	for file in "$LAB_DIR"/pids/*.pid; do
		[[ -e $file ]] || continue
		kill -0 "$(<"$file")" 2>/dev/null ||
			die "$(basename "$file" .pid) exited; see $LAB_DIR/$(basename "$file" .pid).log"
	done
}

# wait_until SECONDS WHAT CMD...: poll CMD every second.
wait_until() {
	local timeout=$1 what=$2; shift 2
	for _ in $(seq "$timeout"); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		check_alive
		sleep 1
	done
	die "timed out after ${timeout}s waiting for $what"
}

agent_flags() {
	local i=$1 dir
	dir=$LAB_DIR/$(node_name "$1")
	echo --data-dir "$dir/data" --run-dir "$dir/run" --bridge-name "$P-p$i" \
		--pod-cidr "$(pod_cidr "$i")" --registry-config "$LAB_DIR/registries"
}

check_prereqs() {
	[[ $(id -u) -eq 0 ]] || die "run as root: it makes network namespaces, links and iptables rules"
	for f in "$SKIFF_BIN" "$REGISTRY_BIN" "$SKIFF_IMAGES/nginx/index.json" "$SKIFF_IMAGES/busybox/index.json"; do
		[[ -e $f ]] || die "$f is missing: run \`make build images\` first"
	done
	for cmd in ip nsenter iptables ss "$KUBECTL"; do
		command -v "$cmd" >/dev/null || die "$cmd is not installed"
	done
	[[ ! -e $LAB_DIR ]] || die "$LAB_DIR exists: a lab is running (or was not torn down); run \`$0 down\` first"
	if ip -4 route show | grep -E "^($NET\.|$POD_NET\.)" >/dev/null; then
		die "$NET.0/24 or $POD_NET.0.0/16 is already routed on this host; set LAB_NET / LAB_POD_NET"
	fi
	ip link show "$BRIDGE" >/dev/null 2>&1 && die "link $BRIDGE exists; run \`$0 down\` first"
	return 0
}

up_network() {
	local n=$1 i ns
	ip link add "$BRIDGE" type bridge
	ip addr add "$GATEWAY/24" dev "$BRIDGE"
	ip link set "$BRIDGE" up
	# With br_netfilter, bridged frames between nodes pass the host's FORWARD chain. Where its
	# policy drops (Docker sets DROP), let lab traffic through with a rule tagged for `down`;
	# elsewhere add nothing, so the host's ruleset stays exactly as it was.
	if iptables -S FORWARD 2>/dev/null | grep '^-P FORWARD DROP' >/dev/null; then
		iptables -I FORWARD -i "$BRIDGE" -o "$BRIDGE" -m comment --comment "$FORWARD_COMMENT" -j ACCEPT
	fi
	for i in $(seq "$n"); do
		ns=$(node_name "$i")
		ip netns add "$ns"
		ip link add "$P-v$i" type veth peer name eth0 netns "$ns"
		ip link set "$P-v$i" master "$BRIDGE" up
		ip -n "$ns" link set lo up
		ip -n "$ns" addr add "$(node_ip "$i")/24" dev eth0
		ip -n "$ns" link set eth0 up
		ip -n "$ns" route add default via "$GATEWAY"
		# A node routes other nodes' pod traffic: forwarding is per network namespace.
		ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
	done
}

up_control_plane() {
	local api_port etcd_port etcd_peer_port registry_port
	api_port=$(free_port 16443)
	etcd_port=$(free_port 12379)
	etcd_peer_port=$(free_port $((etcd_port + 1)))
	registry_port=$(free_port 15000)
	echo "$api_port" >"$LAB_DIR/apiserver-port"
	start registry "$REGISTRY_BIN" --addr "$GATEWAY:$registry_port" --hosts-dir "$LAB_DIR/registries" \
		--image "docker.io/library/nginx:latest=$SKIFF_IMAGES/nginx" \
		--image "docker.io/library/busybox:latest=$SKIFF_IMAGES/busybox"
	# The bridge exists before the server starts, so its serving certificate covers GATEWAY.
	start server "$SKIFF_BIN" server --data-dir "$LAB_DIR/server/data" --run-dir "$LAB_DIR/server/run" \
		--apiserver-port "$api_port" --etcd-client-port "$etcd_port" --etcd-peer-port "$etcd_peer_port" \
		--kubeconfig-out "$KUBECONFIG_FILE" --v 2
	wait_until 120 "the apiserver" kc get --raw /readyz
	wait_until 30 "the registry mirror" test -f "$LAB_DIR/registries/docker.io/hosts.toml"
	log "server on https://$GATEWAY:$api_port, registry mirror on $GATEWAY:$registry_port"
}

up_agents() {
	local n=$1 i name api_port
	api_port=$(<"$LAB_DIR/apiserver-port")
	for i in $(seq "$n"); do
		name=$(node_name "$i")
		mkdir -p "$LAB_DIR/$name"
		# The agent's identity, issued from the cluster CA as on a real server (see
		# deploy/vagrant/provision/server.sh).
		"$SKIFF_BIN" kubeconfig --data-dir "$LAB_DIR/server/data" --user "system:node:$name" \
			--group system:nodes --server "https://$GATEWAY:$api_port" --out "$LAB_DIR/$name/kubeconfig" 2>>"$LAB_DIR/kubeconfig.log"
		# nsenter --net changes only the network namespace: mounts made by the agent's containerd
		# stay visible to the host, so `down` (and anyone debugging) can see and remove them.
		# shellcheck disable=SC2046
		start "$name" nsenter --net="/run/netns/$name" -- "$SKIFF_BIN" agent \
			--kubeconfig "$LAB_DIR/$name/kubeconfig" --node-name "$name" --node-ip "$(node_ip "$i")" \
			$(agent_flags "$i") --v 2
	done
	for i in $(seq "$n"); do
		wait_until 180 "node $(node_name "$i") Ready" \
			kc wait --for=condition=Ready "node/$(node_name "$i")" --timeout=1s
	done
}

cmd_up() {
	local n=${1:?usage: $0 up N}
	[[ $n -ge 1 && $n -le 200 ]] || die "N must be between 1 and 200"
	check_prereqs
	# From here on a failure tears down what was made (`up` clears the trap when done).
	trap on_failure_down EXIT
	# Ctrl-C or kill: exit through the EXIT trap, which tears down.
	trap 'exit 130' INT
	trap 'exit 143' TERM
	mkdir -p "$LAB_DIR/pids"
	echo "$n" >"$LAB_DIR/nodes"
	up_network "$n"
	up_control_plane
	up_agents "$n"
	kc get nodes -o wide >&2
	log "lab of $n nodes is up; logs in $LAB_DIR; use it with:"
	cmd_env
}

cmd_env() { echo "export KUBECONFIG=$KUBECONFIG_FILE"; }

# first_pod_on NODE: the IP of a running my-app pod on NODE, or nothing.
first_pod_on() {
	kc get pods -l app=my-app --field-selector "spec.nodeName=$1,status.phase=Running" \
		-o jsonpath='{.items[0].status.podIP}' 2>/dev/null || true
}

all_running() {
	local want=$1 running
	running=$(kc get pods -l app=my-app --field-selector status.phase=Running -o name | wc -l)
	[[ $running -eq $want ]]
}

cmd_check() {
	local n=${1:?usage: $0 check N} i j from to ip page
	kc apply -f "$repo/test/e2e/testdata/replicaset.yaml" >&2
	kc scale rs my-replicaset --replicas=$((2 * n)) >&2
	wait_until 300 "$((2 * n)) running pods" all_running $((2 * n))
	kc get pods -o wide >&2
	for i in $(seq "$n"); do
		[[ -n $(first_pod_on "$(node_name "$i")") ]] || die "no pod landed on $(node_name "$i")"
	done
	log "pods spread over all $n nodes"
	for i in $(seq "$n"); do
		from=$(node_name "$i")
		j=$((i % n + 1))
		to=$(node_name "$j")
		ip=$(first_pod_on "$to")
		page=$(ip netns exec "$from" curl -s --max-time 5 "http://$ip/") ||
			die "node $from cannot reach pod $ip on $to"
		grep -q '<title>Welcome to nginx' <<<"$page" || die "pod $ip on $to did not serve nginx's page"
		log "node $from -> pod $ip on $to: nginx answers"
	done
	if [[ $n -ge 2 ]]; then
		check_pod_to_pod "$(node_name 1)" "$(first_pod_on "$(node_name 2)")"
	fi
	log "check passed"
}

# check_pod_to_pod NODE IP: a busybox pod on NODE fetches http://IP/ and prints the title,
# which `kubectl logs` (the apiserver proxying to NODE's kubelet API) shows.
check_pod_to_pod() {
	local node=$1 ip=$2 pod=lab-client
	kc delete pod "$pod" --ignore-not-found --wait=true >&2
	kc apply -f - >&2 <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $pod
spec:
  nodeName: $node
  restartPolicy: Never
  containers:
  - name: wget
    image: busybox
    # busybox's nc speaks the HTTP request by hand: the image's busybox wget crashes.
    command: ["sh", "-c", "for i in \$(seq 30); do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 $ip 80 | grep -o '<title>.*</title>' && exit 0; sleep 1; done; exit 1"]
EOF
	wait_until 120 "pod $pod to finish" pod_succeeded "$pod"
	kc logs "$pod" | grep 'Welcome to nginx' >/dev/null || die "pod $pod on $node did not get nginx's page from $ip"
	log "pod $pod on $node -> pod $ip: $(kc logs "$pod")"
	kc delete pod "$pod" --wait=false >&2
}

pod_succeeded() { [[ $(kc get pod "$1" -o jsonpath='{.status.phase}') == Succeeded ]]; }

# down_agent I: stop node I's agent and remove its pods, pod bridge, rules, mounts and dirs
# with `skiff reset` inside its network namespace.
down_agent() {
	local i=$1 name
	name=$(node_name "$i")
	stop "$name"
	if [[ -e /run/netns/$name && -d $LAB_DIR/$name/data ]]; then
		# shellcheck disable=SC2046
		nsenter --net="/run/netns/$name" -- "$SKIFF_BIN" reset $(agent_flags "$i") \
			>>"$LAB_DIR/reset.log" 2>&1 || log "skiff reset of $name failed (see $LAB_DIR/reset.log)"
	fi
	ip netns del "$name" 2>/dev/null || true
	ip link del "$P-v$i" 2>/dev/null || true
}

cmd_down() {
	local n=0 i
	[[ -f $LAB_DIR/nodes ]] && n=$(<"$LAB_DIR/nodes")
	# Netns of this lab that the nodes file may not know (a run killed half way up).
	for ns in $(ip netns list | awk '{print $1}' | grep -E "^$P-n[0-9]+$" || true); do
		i=${ns#"$P-n"}
		[[ $i -gt $n ]] && n=$i
	done
	for i in $(seq "$n"); do down_agent "$i"; done
	stop server
	stop registry
	while iptables -S FORWARD 2>/dev/null | grep -F -- "$FORWARD_COMMENT" >/dev/null &&
		iptables -D FORWARD -i "$BRIDGE" -o "$BRIDGE" -m comment --comment "$FORWARD_COMMENT" -j ACCEPT 2>/dev/null; do :; done
	ip link del "$BRIDGE" 2>/dev/null || true
	if [[ -d $LAB_DIR ]]; then
		if grep -q " $LAB_DIR/" /proc/self/mountinfo; then
			log "mounts left under $LAB_DIR:"; grep " $LAB_DIR/" /proc/self/mountinfo >&2
			awk -v d="$LAB_DIR/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r |
				xargs -r -n1 umount -l
		fi
		rm -rf "$LAB_DIR"
	fi
	log "lab $P is down"
}

cmd_test() {
	local n=${1:?usage: $0 test N}
	cmd_up "$n"
	cmd_check "$n"
	trap - EXIT
	cmd_down
}

# on_failure_down: an `up` or `test` that fails leaves nothing behind.
on_failure_down() {
	local status=$?
	if [[ $status -ne 0 ]]; then
		tail -n 40 "$LAB_DIR"/*.log >&2 2>/dev/null || true
		cmd_down
	fi
	exit "$status"
}

case ${1:-} in
up)
	cmd_up "${2:-}"
	trap - EXIT
	;;
check) cmd_check "${2:-}" ;;
test) cmd_test "${2:-}" ;;
down) cmd_down ;;
env) cmd_env ;;
*) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
