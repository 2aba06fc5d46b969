#!/usr/bin/env bash
# The server VM: a registry mirror with the project's images (unless MIRROR=0), the control
# plane as skiff-server.service, and a kubeconfig per agent in JOIN_DIR, issued from the
# cluster CA. Environment: SERVER_IP, AGENTS ("node1 node2").
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" 2>/dev/null || . /vagrant/deploy/vagrant/provision/lib.sh
: "${SERVER_IP:?}" "${AGENTS:?}"

SKIFF=$ROOT/usr/local/bin/skiff
DATA_DIR=$ROOT/var/lib/skiff

# start_mirror serves bin/images as docker.io/library/{nginx,busybox} and writes the
# containerd hosts.toml files that send pulls there, for the agents to copy.
start_mirror() {
	local images=$ROOT/var/lib/skiff-images
	install -d "$images" "$ROOT/etc/skiff"
	cp -r "$SRC/bin/images/nginx" "$SRC/bin/images/busybox" "$images/"
	install -m 0755 "$SRC/bin/registry" "$ROOT/usr/local/bin/skiff-registry"
	cat >"$ROOT/etc/systemd/system/skiff-registry.service" <<UNIT
[Unit]
Description=registry mirror serving skiff's test images (Vagrant lab)
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=/usr/local/bin/skiff-registry --addr $SERVER_IP:$REGISTRY_PORT --hosts-dir /etc/skiff/registries --image docker.io/library/nginx:latest=/var/lib/skiff-images/nginx --image docker.io/library/busybox:latest=/var/lib/skiff-images/busybox
Restart=always

[Install]
WantedBy=multi-user.target
UNIT
	$SYSTEMCTL daemon-reload
	$SYSTEMCTL enable --now skiff-registry.service
	wait_for 60 "the registry mirror" test -f "$ROOT/etc/skiff/registries/docker.io/hosts.toml"
	rm -rf "$JOIN_DIR/registries"
	cp -r "$ROOT/etc/skiff/registries" "$JOIN_DIR/registries"
}

start_server() {
	write_env --apiserver-port "$APISERVER_PORT" --v 2
	$SYSTEMCTL enable --now skiff-server.service
	# The server writes the admin kubeconfig once its CA and certificates exist.
	wait_for 120 "the cluster CA" test -f "$ROOT/etc/skiff/admin.kubeconfig"
	wait_for 120 "the apiserver" curl -sk -o /dev/null "https://127.0.0.1:$APISERVER_PORT/readyz"
}

# issue_kubeconfigs gives every agent its identity (system:node:<name> in system:nodes), and
# the host an admin kubeconfig that reaches the server over the private network.
issue_kubeconfigs() {
	local node
	for node in $AGENTS; do
		"$SKIFF" kubeconfig --data-dir "$DATA_DIR" --user "system:node:$node" --group system:nodes \
			--server "https://$SERVER_IP:$APISERVER_PORT" --out "$JOIN_DIR/$node.kubeconfig"
	done
	"$SKIFF" kubeconfig --data-dir "$DATA_DIR" --user kubernetes-admin --group system:masters \
		--server "https://$SERVER_IP:$APISERVER_PORT" --out "$JOIN_DIR/admin.kubeconfig"
}

install -d -m 0700 "$JOIN_DIR"
[[ $MIRROR == 1 ]] && start_mirror
start_server
issue_kubeconfigs
log "server up; from the host: kubectl --kubeconfig deploy/vagrant/join/admin.kubeconfig get nodes"
