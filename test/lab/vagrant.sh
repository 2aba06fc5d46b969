#!/usr/bin/env bash
# Runs deploy/vagrant's provisioning scripts, unmodified, on "VMs" made of namespaces: each
# VM is a network namespace on a lab bridge (the Vagrant private network) plus a private
# mount namespace in which tmpfs covers the directories a VM's provisioning writes to
# (/etc/skiff, /etc/systemd/system, /usr/local/bin, /var/lib/skiff, /run/skiff ...), so the
# scripts install to the real paths without touching the host's. systemd is not PID 1 here:
# fake-systemctl runs each unit's ExecStart by hand.
#
#   vagrant.sh test [N]   provision a server and N agents (default 2) as the Vagrantfile
#                         does, check that the agents join, pods spread and reach each other
#                         across VMs, then tear everything down
#   vagrant.sh down       tear down what a failed run left
#
# Environment: VLAB_PREFIX (skv), VLAB_NET (10.249.0; server .10, agent i .(10+i)),
# VLAB_POD_NET (10.250), VLAB_DIR (/tmp/skiff-vlab-<prefix>), KUBECTL (kubectl), and
# SKIFF_BIN, REGISTRY_BIN, SKIFF_IMAGES (default: the repository's bin/) for the share.
# Needs `make build images` (bin/skiff, bin/registry, bin/images).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
P=${VLAB_PREFIX:-skv}
NET=${VLAB_NET:-10.249.0}
POD_NET=${VLAB_POD_NET:-10.250}
DIR=${VLAB_DIR:-/tmp/skiff-vlab-$P}
KUBECTL=${KUBECTL:-kubectl}
SKIFF_BIN=${SKIFF_BIN:-$repo/bin/skiff}
REGISTRY_BIN=${REGISTRY_BIN:-$repo/bin/registry}
SKIFF_IMAGES=${SKIFF_IMAGES:-$repo/bin/images}
BRIDGE=$P-br
SERVER_IP=$NET.10
# Where a VM's provisioning writes; each gets a tmpfs of its own inside the VM.
VM_DIRS=(/etc/skiff /etc/systemd/system /etc/sysctl.d /etc/modules-load.d /usr/local/bin
	/var/lib/skiff /var/lib/skiff-images /run/skiff)

log() { printf 'vagrant-lab: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

wait_until() {
	local timeout=$1 what=$2; shift 2
	for _ in $(seq "$timeout"); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 1
	done
	die "timed out after ${timeout}s waiting for $what"
}

holder_pid() { cat "$DIR/vms/$1.pid"; }

# in_vm VM CMD...: run CMD inside VM's network and mount namespaces.
in_vm() {
	local vm=$1; shift
	nsenter -t "$(holder_pid "$vm")" -m -n -- "$@"
}

# make_vm NAME IP: a network namespace on the bridge and a process holding a private mount
# namespace with tmpfs over VM_DIRS.
make_vm() {
	local vm=$1 ip=$2 veth
	veth=$P-$vm
	ip netns add "$P-$vm"
	ip link add "$veth" type veth peer name eth1 netns "$P-$vm"
	ip link set "$veth" master "$BRIDGE" up
	ip -n "$P-$vm" link set lo up
	ip -n "$P-$vm" addr add "$ip/24" dev eth1
	ip -n "$P-$vm" link set eth1 up
	ip -n "$P-$vm" route add default via "$NET.1"
	ip netns exec "$P-$vm" sysctl -qw net.ipv4.ip_forward=1
	mkdir -p "$DIR/vms"
	nsenter --net="/run/netns/$P-$vm" -- unshare -m --propagation private sleep infinity &
	echo $! >"$DIR/vms/$vm.pid"
	# unshare execs sleep once the namespace exists; wait for that.
	wait_until 10 "VM $vm" bash -c "[[ \$(readlink /proc/$!/ns/mnt) != \$(readlink /proc/self/ns/mnt) ]]"
	local d
	for d in "${VM_DIRS[@]}"; do
		in_vm "$vm" bash -c "mkdir -p '$d' && mount -t tmpfs -o mode=0755 '$vm$d' '$d'"
	done
}

provision() {
	local vm=$1 script=$2; shift 2
	log "provisioning $vm: $script"
	in_vm "$vm" env SRC="$DIR/share" JOIN_DIR="$DIR/join" SKIP_PACKAGES=1 APPLY_KERNEL_SETTINGS=0 \
		SYSTEMCTL="$here/fake-systemctl" FAKE_SYSTEMCTL_STATE="$DIR/units/$vm" "$@" \
		bash "$DIR/share/deploy/vagrant/provision/common.sh" >>"$DIR/provision-$vm.log" 2>&1 ||
		die "common.sh failed on $vm: $(tail -5 "$DIR/provision-$vm.log")"
	in_vm "$vm" env SRC="$DIR/share" JOIN_DIR="$DIR/join" \
		SYSTEMCTL="$here/fake-systemctl" FAKE_SYSTEMCTL_STATE="$DIR/units/$vm" "$@" \
		bash "$DIR/share/deploy/vagrant/provision/$script" >>"$DIR/provision-$vm.log" 2>&1 ||
		die "$script failed on $vm: $(tail -5 "$DIR/provision-$vm.log")"
}

kc() { "$KUBECTL" --kubeconfig "$DIR/join/admin.kubeconfig" --cache-dir "$DIR/kube-cache" "$@"; }

cmd_up() {
	local n=$1 i agents=""
	[[ $(id -u) -eq 0 ]] || die "run as root"
	[[ ! -e $DIR ]] || die "$DIR exists; run \`$0 down\` first"
	if ip -4 route show | grep -E "^($NET\.|$POD_NET\.)" >/dev/null; then
		die "$NET.0/24 or $POD_NET.0.0/16 is already routed here; set VLAB_NET / VLAB_POD_NET"
	fi
	# From here on a failure tears down what was made.
	trap on_exit EXIT
	# Ctrl-C or kill: exit through the EXIT trap, which tears down.
	trap 'exit 130' INT
	trap 'exit 143' TERM
	# The /vagrant share: the repository's deploy/ and the binaries under test.
	mkdir -p "$DIR/share/bin" "$DIR/join"
	ln -s "$repo/deploy" "$DIR/share/deploy"
	ln -s "$SKIFF_BIN" "$DIR/share/bin/skiff"
	ln -s "$REGISTRY_BIN" "$DIR/share/bin/registry"
	ln -s "$SKIFF_IMAGES" "$DIR/share/bin/images"
	ip link add "$BRIDGE" type bridge
	ip addr add "$NET.1/24" dev "$BRIDGE"
	ip link set "$BRIDGE" up
	for i in $(seq "$n"); do agents+=" node$i"; done
	make_vm server "$SERVER_IP"
	provision server server.sh SERVER_IP="$SERVER_IP" AGENTS="${agents# }"
	for i in $(seq "$n"); do
		make_vm "node$i" "$NET.$((10 + i))"
		provision "node$i" agent.sh NODE_NAME="node$i" NODE_IP="$NET.$((10 + i))" POD_CIDR="$POD_NET.$i.0/24"
	done
	for i in $(seq "$n"); do
		wait_until 180 "node$i Ready" kc wait --for=condition=Ready "node/node$i" --timeout=1s
	done
	kc get nodes -o wide >&2
}

running() { [[ $(kc get pods -l app=my-app --field-selector status.phase=Running -o name | wc -l) -eq $1 ]]; }

cmd_check() {
	local n=$1 i ip from
	kc apply -f "$repo/test/e2e/testdata/replicaset.yaml" >&2
	kc scale rs my-replicaset --replicas=$((2 * n)) >&2
	wait_until 300 "$((2 * n)) running pods" running $((2 * n))
	kc get pods -o wide >&2
	for i in $(seq "$n"); do
		ip=$(kc get pods -l app=my-app --field-selector "spec.nodeName=node$i" -o jsonpath='{.items[0].status.podIP}')
		[[ -n $ip ]] || die "no pod on node$i"
		# From the next VM, across the private network. (The server runs no agent, so it has
		# no routes to pod CIDRs, as on Vagrant.)
		from=node$((i % n + 1))
		[[ $from != "node$i" ]] || continue
		in_vm "$from" curl -s --max-time 5 "http://$ip/" | grep '<title>Welcome to nginx' >/dev/null ||
			die "$from cannot reach pod $ip on node$i"
		log "$from -> pod $ip on node$i: nginx answers"
	done
	log "check passed"
}

# stop_units VM: stop what fake-systemctl started in VM.
stop_units() {
	local vm=$1 file pid
	for file in "$DIR/units/$vm"/*.pid; do
		[[ -e $file ]] || continue
		pid=$(<"$file")
		kill -TERM "$pid" 2>/dev/null || continue
		for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL -- "-$pid" 2>/dev/null || true
	done
}

# power_off VM: what switching a VM off does to its processes. Everything still running in
# the VM's mount namespace goes — container shims first with the container inits they
# started (each the init of its own PID namespace, so the containers go with it), then the
# rest — so a pod that `skiff reset` did not remove cannot outlive the lab.
power_off() {
	local vm=$1 holder mnt proc pid
	holder=$(holder_pid "$vm")
	mnt=$(readlink "/proc/$holder/ns/mnt" 2>/dev/null) || return 0
	for proc in /proc/[0-9]*; do
		pid=${proc#/proc/}
		[[ $pid != "$holder" && $(readlink "$proc/ns/mnt" 2>/dev/null) == "$mnt" ]] || continue
		pkill -KILL -P "$pid" 2>/dev/null || true
		kill -KILL "$pid" 2>/dev/null || true
	done
	kill "$holder" 2>/dev/null || true
}

cmd_down() {
	local vm file
	# Agents first, the server last, as one would shut a cluster down.
	for file in "$DIR"/vms/node*.pid "$DIR"/vms/server.pid; do
		[[ -e $file ]] || continue
		vm=$(basename "$file" .pid)
		stop_units "$vm"
		if [[ $vm != server ]] && kill -0 "$(holder_pid "$vm")" 2>/dev/null; then
			# skiff reset with the unit's paths, inside the VM: pods, pod bridge, mounts, dirs.
			in_vm "$vm" /usr/local/bin/skiff reset --data-dir /var/lib/skiff --run-dir /run/skiff \
				>>"$DIR/reset.log" 2>&1 || log "skiff reset failed on $vm (see $DIR/reset.log)"
		fi
		power_off "$vm"
		ip netns del "$P-$vm" 2>/dev/null || true
		ip link del "$P-$vm" 2>/dev/null || true
	done
	ip link del "$BRIDGE" 2>/dev/null || true
	rm -rf "$DIR"
	log "down"
}

on_exit() {
	local status=$?
	if [[ $status -ne 0 ]]; then
		tail -n 20 "$DIR"/units/*/*.log "$DIR"/provision-*.log >&2 2>/dev/null || true
	fi
	cmd_down
	exit "$status"
}

case ${1:-} in
test)
	n=${2:-2}
	cmd_up "$n"
	cmd_check "$n"
	trap - EXIT
	cmd_down
	;;
down) cmd_down ;;
*) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
