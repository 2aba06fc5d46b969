#!/usr/bin/env bash
# The seed, live: serve the project's nginx image from a local registry mirror, start
# `skiff up`, create the seed's ReplicaSet with the stock kubectl, and curl both pods.
# Ctrl-C stops skiff (pods keep running; `bin/skiff reset` removes everything).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (sudo make demo)" >&2; exit 1; }

DATA_DIR=${DATA_DIR:-/var/lib/skiff}
KUBECONFIG_OUT=${KUBECONFIG_OUT:-/etc/skiff/admin.kubeconfig}
REGISTRY_ADDR=${REGISTRY_ADDR:-127.0.0.1:5000}
HOSTS_DIR=${HOSTS_DIR:-/etc/skiff/registries}
export KUBECONFIG=$KUBECONFIG_OUT

bin/registry --addr "$REGISTRY_ADDR" --hosts-dir "$HOSTS_DIR" \
	--image docker.io/library/nginx:latest=bin/images/nginx >/tmp/skiff-demo-registry.log 2>&1 &
registry_pid=$!
bin/skiff up --data-dir "$DATA_DIR" --kubeconfig-out "$KUBECONFIG_OUT" --registry-config "$HOSTS_DIR" \
	>/tmp/skiff-demo.log 2>&1 &
skiff_pid=$!
trap 'kill $skiff_pid $registry_pid 2>/dev/null; wait $skiff_pid 2>/dev/null' EXIT

echo "demo: waiting for the node (log: /tmp/skiff-demo.log)"
until kubectl get nodes 2>/dev/null | grep -q ' Ready'; do
	kill -0 $skiff_pid 2>/dev/null || { tail -20 /tmp/skiff-demo.log; exit 1; }
	sleep 1
done
kubectl get nodes -o wide
kubectl apply -f test/e2e/testdata/replicaset.yaml
kubectl wait --for=condition=Ready pod -l app=my-app --timeout=180s
kubectl get pods -o wide
for ip in $(kubectl get pods -l app=my-app -o jsonpath='{.items[*].status.podIP}'); do
	echo "--- curl http://$ip/"
	curl -s "http://$ip/" | grep -i '<title>'
done
echo "demo: skiff is running; press Ctrl-C to stop it (KUBECONFIG=$KUBECONFIG_OUT)"
wait $skiff_pid
