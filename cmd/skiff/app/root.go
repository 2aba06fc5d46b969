package app

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
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

	root.AddCommand(newUpCommand(), newServerCommand(), newAgentCommand(), newCRICommand(), newResetCommand())
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

func newUpCommand() *cobra.Command {
	o := newOptions()
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run everything for a single node in one process: etcd, apiserver, controllers, scheduler, agent and CRI server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.complete(); err != nil {
				return err
			}
			ctx, cancel := signalContext()
			defer cancel()
			return runUp(ctx, o)
		},
	}
	o.addCommonFlags(cmd.Flags())
	o.addServerFlags(cmd.Flags())
	o.addAgentFlags(cmd.Flags(), false)
	o.addRuntimeFlags(cmd.Flags())
	return cmd
}

func newServerCommand() *cobra.Command {
	o := newOptions()
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane: etcd (embedded unless --etcd-servers), apiserver, controllers and scheduler",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.complete(); err != nil {
				return err
			}
			ctx, cancel := signalContext()
			defer cancel()
			return runServer(ctx, o)
		},
	}
	o.addCommonFlags(cmd.Flags())
	o.addServerFlags(cmd.Flags())
	cmd.Flags().BoolVar(&o.DisableControllers, "disable-controllers", false, "run the apiserver without controllers and scheduler")
	return cmd
}

func newAgentCommand() *cobra.Command {
	o := newOptions()
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the node agent and, unless --container-runtime-endpoint is given, skiff's CRI server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.complete(); err != nil {
				return err
			}
			ctx, cancel := signalContext()
			defer cancel()
			return runAgent(ctx, o)
		},
	}
	o.addCommonFlags(cmd.Flags())
	o.addAgentFlags(cmd.Flags(), true)
	o.addRuntimeFlags(cmd.Flags())
	return cmd
}

func newCRICommand() *cobra.Command {
	o := newOptions()
	cmd := &cobra.Command{
		Use:   "cri",
		Short: "Run skiff's CRI server alone (for crictl, critest or another kubelet)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.complete(); err != nil {
				return err
			}
			ctx, cancel := signalContext()
			defer cancel()
			return runCRI(ctx, o)
		},
	}
	o.addCommonFlags(cmd.Flags())
	o.addRuntimeFlags(cmd.Flags())
	cmd.Flags().StringVar(&o.PodCIDR, "pod-cidr", "", "pod IP range for the generated CNI config (else set by the kubelet through UpdateRuntimeConfig)")
	return cmd
}
