// Package cri is skiff's CRI server: the k8s.io/cri-api RuntimeService and ImageService
// over containerd's Go client, OCI specs built with runtime-spec, pod networking from
// package network. It knows nothing of the apiserver.
//
// The door:
//
//	d, err := cri.StartContainerd(ctx, cri.ContainerdConfig{...}) // optional child containerd
//	s, err := cri.New(ctx, cri.Config{...})  // connects, imports the pause image, rebuilds state
//	err = s.Serve(ctx, socketPath)            // gRPC on a unix socket until ctx ends
//
// State lives in containerd (labels and extensions in our own containerd namespace), so a
// restarted server rebuilds its in-memory stores from it.
package cri
