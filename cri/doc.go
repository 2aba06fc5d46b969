// Package cri is skiff's CRI server: the k8s.io/cri-api RuntimeService and ImageService
// over containerd's Go client, OCI specs built with runtime-spec, pod networking from
// package network. It knows nothing of the apiserver.
//
// The door:
//
//	d, err := cri.StartContainerd(ctx, cri.ContainerdConfig{...}) // optional child containerd
//	s, err := cri.New(ctx, cri.Config{...})  // connects, imports the pause image, rebuilds state
//	err = s.Serve(ctx, socketPath)            // gRPC on a unix socket until ctx ends
//	s.Close()                                 // stop watchers; containers keep running
//	d.Stop(ctx)                               // SIGTERM containerd; shims (and pods) survive
//
// State lives in containerd (labels and extensions in our own containerd namespace), so a
// restarted server rebuilds its in-memory stores from it: a sandbox is its pause
// container (label sh.skiff.cri/kind=sandbox, metadata extension), a container carries
// a metadata and a status extension, updated on every state change. Running tasks are
// re-attached, including their output FIFOs, which the shim keeps open in between.
//
// The pause image is built by the project (cri/pause/pause.c, compiled by
// cri/pause/build.sh into cri/pause/pause, embedded here) and imported at startup under
// Config.PauseImage, pinned; nothing is ever downloaded for it.
//
// Two servers can share a host: each uses its own containerd namespace, runc root
// (StateDir/runc), FIFO directory (StateDir/io) and sandbox files (RootDir/sandboxes).
package cri
