package cri

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// runtimeFeatures is what the OCI runtime can do beyond the basics, probed once at
// startup and advertised to the kubelet in Status.
type runtimeFeatures struct {
	// recursiveReadOnly: runc knows the "rro" mount option (runc >= 1.1 on a
	// kernel with mount_setattr, Linux 5.12).
	recursiveReadOnly bool
}

// runcFeatures is the part of `runc features` (runtime-spec features.json) we read.
type runcFeatures struct {
	MountOptions []string `json:"mountOptions"`
}

// probeRuntimeFeatures asks the runc on PATH, the one containerd's shim runs (both
// are on this host), what it supports. A runc without `features` supports nothing
// optional.
func probeRuntimeFeatures(ctx context.Context) runtimeFeatures {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "runc", "features").Output()
	if err != nil {
		klog.FromContext(ctx).Info("runc does not report its features; assuming none optional", "err", err)
		return runtimeFeatures{}
	}
	f, err := parseRuncFeatures(out)
	if err != nil {
		klog.FromContext(ctx).Info("Unreadable runc features; assuming none optional", "err", err)
		return runtimeFeatures{}
	}
	return f
}

func parseRuncFeatures(data []byte) (runtimeFeatures, error) {
	var rf runcFeatures
	if err := json.Unmarshal(data, &rf); err != nil {
		return runtimeFeatures{}, fmt.Errorf("decode runc features: %w", err)
	}
	return runtimeFeatures{recursiveReadOnly: slices.Contains(rf.MountOptions, "rro")}, nil
}

// runtimeHandlers lists the one handler we serve, the default (""), with its features.
func (f runtimeFeatures) runtimeHandlers() []*runtimeapi.RuntimeHandler {
	return []*runtimeapi.RuntimeHandler{{
		Name: "",
		Features: &runtimeapi.RuntimeHandlerFeatures{
			RecursiveReadOnlyMounts: f.recursiveReadOnly,
		},
	}}
}
