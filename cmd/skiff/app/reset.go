package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/skiff-sh/skiff/cri"
	"github.com/skiff-sh/skiff/network"
)

func newResetCommand() *cobra.Command {
	cmd := newSubcommand("reset",
		"Remove every pod, network and file a skiff node created under --data-dir and --run-dir",
		func(o *Options, fs *pflag.FlagSet) {
			o.addRuntimeFlags(fs)
			fs.StringVar(&o.PodCIDR, "pod-cidr", o.PodCIDR, "pod IP range of the node being reset")
		}, runReset)
	cmd.Long = "reset stops and removes every pod sandbox of skiff's containerd namespace (through the\n" +
		"CRI server, so CNI releases the IPs), stops the child containerd, deletes the pod bridge\n" +
		"and its iptables rules, unmounts what is left under the data and run dirs and removes them."
	return cmd
}

func runReset(ctx context.Context, o *Options) error {
	logger := klog.FromContext(ctx)
	var errs []error
	if err := removeAllSandboxes(ctx, o); err != nil {
		errs = append(errs, err)
	}
	// The default cgroup parent of pods that name none, once no pod is in it.
	if err := cri.RemoveEmptyCgroup("/" + o.ContainerdNS); err != nil {
		errs = append(errs, err)
	}
	netManager, err := network.New(o.networkConfig())
	if err == nil {
		err = netManager.Cleanup(ctx)
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("pod network: %w", err))
	}
	for _, dir := range []string{o.RunDir, o.DataDir} {
		if err := unmountUnder(dir); err != nil {
			errs = append(errs, err)
		}
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", dir, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	logger.Info("Reset done", "dataDir", o.DataDir, "runDir", o.RunDir)
	return nil
}

// removeAllSandboxes runs the node's runtime once more and removes every sandbox through the
// CRI server itself, so containers, CNI attachments and netns go the way they always do.
func removeAllSandboxes(ctx context.Context, o *Options) error {
	if _, err := os.Stat(o.containerdRoot()); o.Containerd == "" && os.IsNotExist(err) {
		return nil // nothing was ever started here
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	endpoint, _, err := startRuntime(gctx, g, o)
	if err != nil {
		return fmt.Errorf("starting the runtime to remove pods: %w", err)
	}
	runtimeService, err := dialRuntime(gctx, endpoint)
	if err != nil {
		return err
	}
	sandboxes, err := runtimeService.ListPodSandbox(gctx, &runtimeapi.PodSandboxFilter{})
	if err != nil {
		return fmt.Errorf("listing pod sandboxes: %w", err)
	}
	var errs []error
	for _, sandbox := range sandboxes {
		if err := runtimeService.StopPodSandbox(gctx, sandbox.Id); err != nil {
			errs = append(errs, fmt.Errorf("stopping sandbox %s: %w", sandbox.Id, err))
		}
		if err := runtimeService.RemovePodSandbox(gctx, sandbox.Id); err != nil {
			errs = append(errs, fmt.Errorf("removing sandbox %s: %w", sandbox.Id, err))
		}
	}
	cancel()
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// unmountUnder lazily unmounts every mount point below dir, deepest first.
func unmountUnder(dir string) error {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("reading mountinfo: %w", err)
	}
	prefix := filepath.Clean(dir) + "/"
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 4 && strings.HasPrefix(fields[4]+"/", prefix) {
			points = append(points, fields[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	var errs []error
	for _, point := range points {
		if err := unix.Unmount(point, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", point, err))
		}
	}
	return errors.Join(errs...)
}
