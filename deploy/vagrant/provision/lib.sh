# shellcheck shell=bash
# Shared by the provisioning scripts. Every path can be moved for a test run (see
# test/lab/provision_test.sh): ROOT prefixes what a VM installs, SRC is the repository
# (/vagrant on a VM), JOIN_DIR is where the server leaves what the agents need, and
# SYSTEMCTL stands in for systemctl where there is no systemd.
set -euo pipefail

ROOT=${ROOT:-}
SRC=${SRC:-/vagrant}
JOIN_DIR=${JOIN_DIR:-$SRC/deploy/vagrant/join}
SYSTEMCTL=${SYSTEMCTL:-systemctl}
MIRROR=${MIRROR:-1}
REGISTRY_PORT=${REGISTRY_PORT:-5000}
APISERVER_PORT=${APISERVER_PORT:-6443}

log() { printf 'provision: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# wait_for SECONDS WHAT CMD...: poll CMD every second.
wait_for() {
	local timeout=$1 what=$2; shift 2
	for _ in $(seq "$timeout"); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 1
	done
	die "timed out after ${timeout}s waiting for $what"
}

# write_env ARGS...: the skiff units read their extra flags from /etc/skiff/skiff.env.
write_env() {
	install -d -m 0755 "$ROOT/etc/skiff"
	printf 'SKIFF_ARGS="%s"\n' "$*" >"$ROOT/etc/skiff/skiff.env"
}
