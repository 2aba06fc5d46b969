package app

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/klog/v2"
)

// NewRootCommand returns the skiff command with its subcommands.
func NewRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "skiff",
		Short:         "A lightweight Kubernetes node stack: apiserver on etcd, controllers, scheduler, kubelet-like agent and CRI server",
		SilenceUsage:  true,
		SilenceErrors: false,
	}
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	root.PersistentFlags().AddGoFlag(klogFlags.Lookup("v"))
	root.PersistentFlags().AddGoFlag(klogFlags.Lookup("vmodule"))

	root.AddCommand(newUpCommand(), newServerCommand(), newAgentCommand(), newCRICommand(), newResetCommand(), newKubeconfigCommand())
	return root
}

// signalContext is cancelled on SIGINT or SIGTERM; a second signal exits at once.
func signalContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-signals
		klog.InfoS("Shutting down; pods keep running", "signal", sig.String())
		cancel()
		<-signals
		klog.InfoS("Second signal, exiting now")
		os.Exit(1)
	}()
	return klog.NewContext(ctx, klog.Background()), cancel
}

// newSubcommand builds a subcommand that registers its flags on fresh Options, completes
// them, and runs with a context cancelled by SIGINT/SIGTERM.
func newSubcommand(use, short string, addFlags func(*Options, *pflag.FlagSet), run func(context.Context, *Options) error) *cobra.Command {
	o := newOptions()
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.complete(); err != nil {
				return err
			}
			ctx, cancel := signalContext()
			defer cancel()
			return run(ctx, o)
		},
	}
	o.addCommonFlags(cmd.Flags())
	addFlags(o, cmd.Flags())
	return cmd
}

func newUpCommand() *cobra.Command {
	return newSubcommand("up",
		"Run everything for a single node in one process: etcd, apiserver, controllers, scheduler, agent and CRI server",
		func(o *Options, fs *pflag.FlagSet) {
			o.addServerFlags(fs)
			o.addAgentFlags(fs, false)
			o.addRuntimeFlags(fs)
		}, runUp)
}

func newServerCommand() *cobra.Command {
	return newSubcommand("server",
		"Run the control plane: etcd (embedded unless --etcd-servers), apiserver, controllers and scheduler",
		func(o *Options, fs *pflag.FlagSet) {
			o.addServerFlags(fs)
			fs.BoolVar(&o.DisableControllers, "disable-controllers", false, "run the apiserver without controllers and scheduler")
		}, runServer)
}

func newAgentCommand() *cobra.Command {
	return newSubcommand("agent",
		"Run the node agent and, unless --container-runtime-endpoint is given, skiff's CRI server",
		func(o *Options, fs *pflag.FlagSet) {
			o.addAgentFlags(fs, true)
			o.addRuntimeFlags(fs)
		}, runAgent)
}

func newCRICommand() *cobra.Command {
	return newSubcommand("cri",
		"Run skiff's CRI server alone (for crictl, critest or another kubelet)",
		func(o *Options, fs *pflag.FlagSet) {
			o.addRuntimeFlags(fs)
			fs.StringVar(&o.PodCIDR, "pod-cidr", "", "pod IP range for the generated CNI config (else set by the kubelet through UpdateRuntimeConfig)")
		}, runCRI)
}
