#!/usr/bin/env bash
# Every VM: the runtime packages, the skiff binary, the systemd units, and the kernel settings
# a node that routes pod traffic needs.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" 2>/dev/null || . /vagrant/deploy/vagrant/provision/lib.sh

install_packages() {
	[[ ${SKIP_PACKAGES:-0} == 1 ]] && return 0
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends containerd runc containernetworking-plugins \
		iptables curl ca-certificates
	# skiff starts a containerd of its own (own socket, root and config under /var/lib/skiff
	# and /run/skiff); Debian's daemon would only hold memory.
	$SYSTEMCTL disable --now containerd.service || true
}

install_skiff() {
	[[ -x $SRC/bin/skiff ]] || die "$SRC/bin/skiff is missing: run \`make build images\` on the host"
	install -d "$ROOT/usr/local/bin" "$ROOT/etc/systemd/system" "$ROOT/etc/sysctl.d" "$ROOT/etc/modules-load.d"
	install -m 0755 "$SRC/bin/skiff" "$ROOT/usr/local/bin/skiff"
	install -m 0644 "$SRC"/deploy/systemd/*.service "$ROOT/etc/systemd/system/"
	$SYSTEMCTL daemon-reload
}

kernel_settings() {
	# Nodes forward pod traffic to each other; bridged pod traffic passes iptables (the CNI
	# bridge plugin's masquerade and portmap rules rely on it).
	echo br_netfilter >"$ROOT/etc/modules-load.d/skiff.conf"
	printf 'net.ipv4.ip_forward = 1\nnet.bridge.bridge-nf-call-iptables = 1\n' >"$ROOT/etc/sysctl.d/90-skiff.conf"
	# A test run on namespaces (APPLY_KERNEL_SETTINGS=0) must not change the host's kernel.
	[[ ${APPLY_KERNEL_SETTINGS:-1} == 1 ]] || return 0
	modprobe br_netfilter
	sysctl -q --system
}

install_packages
install_skiff
kernel_settings
log "skiff $("$ROOT/usr/local/bin/skiff" --help >/dev/null && echo installed)"
