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
//   - pressure.go: MemoryPressure, DiskPressure and PIDPressure from memory.available,
//     nodefs/imagefs available and inodesFree, pid.available against kubelet's hard
//     eviction defaults (Config.Pressure), held 5m after recovery; nothing is evicted.
//   - pod_source.go: the informer on pods with spec.nodeName=<node>.
//   - status_manager.go: writes pod status onto the newest copy it knows (the informer's
//     or its own last write) and reads the pod only after a conflict, so a status costs
//     one request. Events go through client-go's correlating broadcaster (repeats bump
//     count), over Config.EventClient when set so they do not queue status writes.
//   - agent.go (syncLoop), sync_loop.go: one select that hands work out: pod updates,
//     runtime changes from the PLEG, housekeeping.
//   - pleg.go, pleg_events.go: wakes the worker of a pod as soon as CRI
//     GetContainerEvents reports one of its containers stopped, and relists the runtime
//     every second (the source of truth, and the fallback without events).
//   - pod_workers.go: a goroutine per pod UID with a newest-update-wins mailbox, in the
//     states syncing → terminating → terminated.
//   - admission.go: a pod whose requests do not fit fails with OutOfcpu/OutOfmemory/OutOfpods.
//   - pod_actions.go, sync.go, container_start.go: computePodActions, then sandbox, image
//     pull, create and start, with kubelet's restart back-off (10 s doubling to 5 min,
//     reset after 10 min of running), init containers and sidecars (sidecars.go:
//     init containers with restartPolicy Always); run_as_non_root.go checks runAsNonRoot;
//     sandbox_config.go, container_config.go, env.go, volumes.go (emptyDir, hostPath),
//     etc_hosts.go and pod_cgroups.go build what CRI is given.
//   - pod_status.go, status_manager.go: the pod status, written only when it changed. A
//     pod held back by its sandbox or volumes carries the failure as its containers'
//     waiting message (ContainerCreating), besides the event (why_not_running_test.go).
//   - pull_progress.go: while PullImage runs, polls verbose ImageStatus for the runtime's
//     info["pullProgress"] and shows "Pulling <image>: 12.3/40.1 MB, 3.2 MB/s" as the
//     waiting message; a pull under Config.ImagePull's floor for SlowTimeout is cancelled
//     (ErrImagePull, then ImagePullBackOff).
//   - terminate.go, container_kill.go: stop with the grace period (preStop hook first,
//     StopContainer gets what is left of the grace period; sidecars after the app
//     containers), remove, and the final grace-0 delete.
//   - lifecycle_hooks.go: postStart (a failure kills the container, FailedPostStartHook)
//     and preStop hooks: exec, httpGet, sleep.
//   - active_deadline.go: activeDeadlineSeconds fails the pod with DeadlineExceeded.
//   - prober.go, probe_worker.go, probe_grpc.go: liveness, readiness and startup probes
//     (exec, httpGet, tcpSocket, gRPC health v1).
//   - kubelet_server.go, container_logs.go: the kubelet API on KubeletPort (containerLogs,
//     exec, attach, portForward proxied to the runtime's streaming server).
//   - kubelet_metrics.go, instrumented_runtime.go: GET /metrics from the Agent's own
//     Prometheus registry with kubelet's metric names; the CRI services are wrapped in New.
//   - stats_summary.go, stats_node.go: GET /stats/summary, kubelet's Summary API (CRI stats,
//     /proc, statfs, log and emptyDir walks).
//   - container_log_manager.go: kubelet's log rotation (Config.LogRotation): a log past
//     MaxSize becomes <log>.<UTC time>, older ones are gzipped and pruned to MaxFiles, then
//     CRI ReopenContainerLog; `logs -f` moves on to the new file once the old one is drained.
//
// State that must survive an agent restart lives in the runtime, as labels and annotations
// on sandboxes and containers (see labels.go): a restarted agent adopts running pods without
// restarting them. The agent lists and touches only the sandboxes and containers labelled
// with its node name, so it can share a runtime with other agents or a kubelet.
package agent
