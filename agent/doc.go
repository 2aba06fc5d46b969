// Package agent is skiff's kubelet: it registers the Node, renews its Lease, watches the
// pods bound to it (a watch filtered on spec.nodeName), runs one worker per pod that syncs
// the pod through CRI (plan, then act), and reports pod status and events.
//
// The agent sees the container runtime only through the k8s.io/cri-api interfaces
// (RuntimeService and ImageManagerService) and the apiserver only through client-go.
//
// The door:
//
//	a, err := agent.New(agent.Config{...}) // validates the config
//	err = a.Run(ctx)                       // until ctx ends
//
// Inside, structured like the kubelet:
//
//   - node_status.go, lease.go: the Node with capacity from the machine and a Ready
//     condition from CRI Status; the pod CIDR goes to the runtime with UpdateRuntimeConfig;
//     status is written when it changes (and every 5 minutes); the Lease in
//     kube-node-lease is renewed every quarter of its duration.
//   - pod_source.go: the informer on pods with spec.nodeName=<node>.
//   - agent.go (syncLoop), sync_loop.go: one select that hands work out: pod updates,
//     runtime changes from the PLEG, housekeeping.
//   - pleg.go: relists the runtime every second and wakes the workers of changed pods.
//   - pod_workers.go: a goroutine per pod UID with a newest-update-wins mailbox, in the
//     states syncing → terminating → terminated.
//   - admission.go: a pod whose requests do not fit fails with OutOfcpu/OutOfmemory/OutOfpods.
//   - pod_actions.go, sync.go, container_start.go: computePodActions, then sandbox, image
//     pull, create and start, with kubelet's restart back-off and init containers;
//     sandbox_config.go, container_config.go, env.go, volumes.go (emptyDir, hostPath),
//     etc_hosts.go and pod_cgroups.go build what CRI is given.
//   - pod_status.go, status_manager.go: the pod status, written only when it changed.
//   - terminate.go: stop with the grace period, remove, and the final grace-0 delete.
//   - prober.go: liveness, readiness and startup probes (exec, httpGet, tcpSocket).
//   - kubelet_server.go, container_logs.go: the kubelet API on KubeletPort (containerLogs,
//     exec, attach, portForward proxied to the runtime's streaming server).
//
// State that must survive an agent restart lives in the runtime, as labels and annotations
// on sandboxes and containers (see labels.go): a restarted agent adopts running pods without
// restarting them. The agent lists and touches only the sandboxes and containers labelled
// with its node name, so it can share a runtime with other agents or a kubelet.
package agent
