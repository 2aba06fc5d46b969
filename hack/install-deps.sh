#!/usr/bin/env bash
# Installs what skiff's build and tests need on a fresh Debian machine, skipping what is
# already there: the container runtime, CNI plugins, iptables, etcdctl, and crictl (built
# from the Go module proxy into bin/tools).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
for pkg in containerd runc containernetworking-plugins iptables etcd-client iproute2 curl util-linux; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: missing packages ${need_apt[*]}; run as root" >&2
		exit 1
	fi
	echo "install-deps: apt-get install ${need_apt[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >/dev/null
	apt-get install -y -q --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# Debian starts containerd as a service when it is installed; skiff runs its own.
CRICTL_VERSION=v1.37.0
if [ ! -x bin/tools/crictl ]; then
	echo "install-deps: building crictl ${CRICTL_VERSION}"
	GOBIN="$PWD/bin/tools" CGO_ENABLED=0 go install "sigs.k8s.io/cri-tools/cmd/crictl@${CRICTL_VERSION}"
fi
