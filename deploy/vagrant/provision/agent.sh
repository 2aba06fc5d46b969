#!/usr/bin/env bash
# An agent VM: joins with the kubeconfig the server left in JOIN_DIR and runs
# skiff-agent.service. Environment: NODE_NAME, NODE_IP (the private-network address, which
# other nodes route this node's pod CIDR through), POD_CIDR.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" 2>/dev/null || . /vagrant/deploy/vagrant/provision/lib.sh
: "${NODE_NAME:?}" "${NODE_IP:?}" "${POD_CIDR:?}"

kubeconfig=$JOIN_DIR/$NODE_NAME.kubeconfig
wait_for 600 "$kubeconfig (provision the server first)" test -s "$kubeconfig"
install -d -m 0755 "$ROOT/etc/skiff"
install -m 0600 "$kubeconfig" "$ROOT/etc/skiff/agent.kubeconfig"

args=(--node-name "$NODE_NAME" --node-ip "$NODE_IP" --pod-cidr "$POD_CIDR" --v 2)
if [[ $MIRROR == 1 ]]; then
	rm -rf "$ROOT/etc/skiff/registries"
	cp -r "$JOIN_DIR/registries" "$ROOT/etc/skiff/registries"
	args+=(--registry-config /etc/skiff/registries)
fi
write_env "${args[@]}"
$SYSTEMCTL enable --now skiff-agent.service
log "agent $NODE_NAME started; it shows up in \`kubectl get nodes\` within seconds"
