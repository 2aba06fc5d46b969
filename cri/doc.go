// Package cri is skiff's CRI server: the k8s.io/cri-api RuntimeService and ImageService
// over containerd's Go client, OCI specs built with runtime-spec, pod networking from
// package network. It knows nothing of the apiserver.
//
// The door:
//
//	d, err := cri.StartContainerd(ctx, cri.ContainerdConfig{...}) // optional child containerd
//	s, err := cri.New(ctx, cri.Config{...})  // connects, imports the pause image, rebuilds state,
//	                                          // listens for streaming on Config.StreamAddress
//	err = s.Serve(ctx, socketPath)            // gRPC on a unix socket + the streaming server, until ctx ends
//	s.Close()                                 // stop watchers; containers keep running
//	d.Stop(ctx)                               // SIGTERM containerd; shims (and pods) survive
//	cri.RemoveEmptyCgroup("/" + namespace)    // skiff reset: the default pod cgroup parent
//
// A sandbox runs no pause container (CRI-O's drop_infra_ctr, taken one step further).
// Its network namespace, and its IPC and UTS namespaces with the pod's hostname and
// sysctls, are bind-mounted on files (StateDir/sandboxes/<id>, namespaces.go) that its
// containers join by path; when its containers share one PID namespace (the CRI default,
// kubelet's shareProcessNamespace), skiff starts the pause binary itself as that
// namespace's init, in the sandbox's cgroup (sandbox_pidns.go). RunPodSandbox is then
// the CNI ADD and a millisecond or two, against a shim start and two runc runs; the
// shim starts with the pod's first container instead. Config.AlwaysPause brings back
// containerd's pause container (sandbox_pause.go).
//
// State lives in containerd (labels and extensions in our own containerd namespace), so a
// restarted server rebuilds its in-memory stores from it: a sandbox is a containerd
// container that runs nothing (label sh.skiff.cri/kind=sandbox, metadata extension; its
// pause container with AlwaysPause), a container carries a metadata and a status
// extension, updated on every state change. Running tasks are re-attached, including
// their output FIFOs, which the shim keeps open in between; a sandbox is ready again if
// its namespace mounts are there and its PID namespace holder, found by PID and
// namespace inode, still runs. Neither the mounts nor the holder depend on the server.
//
// StopContainer returns once the exit is recorded and `runc delete` runs behind it;
// RemoveContainer of such a container marks it (an empty file in RootDir/removing),
// drops it from the CRI's view and finishes in the background, or the next server does.
//
// Exec, Attach and PortForward answer with a URL on the streaming server (loopback, an
// ephemeral port by default) carrying a one-time token; the session itself speaks
// SPDY (remotecommand v1-v4 with exit codes, portforward) or websocket (v1-v4) through
// k8s.io/cri-streaming, the library containerd's CRI plugin uses. Exec runs a
// containerd exec process; Attach joins the main process's stdio, whose output is
// fanned out from the same reads that feed the container log; PortForward dials
// 127.0.0.1:<port> from inside the pod's network namespace.
//
// GetContainerEvents streams CREATED/STARTED/STOPPED/DELETED events for containers and
// sandboxes, published where the in-memory stores change. PodSandboxStats sums the
// containers' usage and reads the pod's interface counters from its netns.
//
// Image volumes (a Mount with image set) are view snapshots of the image's chain ID,
// mounted read-only on the host under StateDir/image-volumes/<container> and bound
// into the container (with image_sub_path); RemoveContainer unmounts and deletes them.
// Recursive read-only mounts use runc's "rro" option when `runc features` lists it;
// Status advertises that per runtime handler, and the SupplementalGroupsPolicy
// feature (Strict leaves out the image's /etc/group; ContainerStatus.user reports the
// process identity from the spec).
//
// Concurrent PullImage calls of one image share one pull, cancelled only once every caller
// has gone, under a lease of its own deleted at the end so a cancelled pull leaves no
// ingests (pull_progress.go). While it runs, a verbose ImageStatus of the image carries
// info["pullProgress"]: {"ref","bytesDone","bytesTotal","startedAt"}, the bytes of the
// manifest's config and layers fetched so far (completed blobs plus ingest offsets).
//
// The pause image is built by the project (cri/pause/pause.c, compiled by
// cri/pause/build.sh into cri/pause/pause, embedded here) and imported at startup under
// Config.PauseImage, pinned; nothing is ever downloaded for it.
//
// RunPodSandbox and CreateContainer validate their request before creating anything
// (validate.go): a bad field is InvalidArgument naming it and saying what to do.
// FuzzSandboxRequest and FuzzContainerRequest (fuzz_test.go) run arbitrary requests
// through everything they reach before containerd (go test -fuzz).
//
// Two servers can share a host: each uses its own containerd namespace, runc root
// (StateDir/runc), FIFO directory (StateDir/io), sandbox files (RootDir/sandboxes) and
// sandbox state (StateDir/sandboxes).
package cri
