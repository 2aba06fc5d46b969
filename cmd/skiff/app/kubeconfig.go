package app

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/klog/v2"

	"github.com/skiff-sh/skiff/controlplane-lite/pki"
)

// kubeconfigRequest is what `skiff kubeconfig` issues: a client certificate from the
// cluster CA under --data-dir, wrapped in a kubeconfig.
type kubeconfigRequest struct {
	server string
	user   string
	groups []string
	out    string
}

func newKubeconfigCommand() *cobra.Command {
	req := &kubeconfigRequest{}
	cmd := newSubcommand("kubeconfig",
		"Issue a client certificate from the cluster CA and write a kubeconfig (e.g. for `skiff agent` on another machine)",
		func(o *Options, fs *pflag.FlagSet) {
			fs.StringVar(&req.server, "server", "", "apiserver URL the kubeconfig points at (default https://127.0.0.1:<apiserver-port>)")
			fs.IntVar(&o.APIServerPort, "apiserver-port", o.APIServerPort, "apiserver port, used when --server is empty")
			fs.StringVar(&req.user, "user", "", "user name (certificate CN), e.g. system:node:node2")
			fs.StringSliceVar(&req.groups, "group", nil, "groups (certificate O), e.g. system:nodes")
			fs.StringVar(&req.out, "out", "", "where to write the kubeconfig")
		},
		func(ctx context.Context, o *Options) error { return writeKubeconfig(ctx, o, req) })
	cmd.Example = "  skiff kubeconfig --user system:node:node2 --group system:nodes \\\n" +
		"      --server https://192.168.56.10:6443 --out /vagrant/node2.kubeconfig"
	return cmd
}

func writeKubeconfig(ctx context.Context, o *Options, req *kubeconfigRequest) error {
	if req.user == "" || req.out == "" {
		return fmt.Errorf("--user and --out are required")
	}
	if req.server == "" {
		req.server = fmt.Sprintf("https://127.0.0.1:%d", o.APIServerPort)
	}
	ca, err := pki.EnsureCA(o.pkiDir())
	if err != nil {
		return fmt.Errorf("cluster CA under %s: %w", o.pkiDir(), err)
	}
	certName := "user-" + strings.NewReplacer(":", "-", "/", "-").Replace(req.user)
	certFile, keyFile, err := ca.EnsureClientCert(certName, req.user, req.groups)
	if err != nil {
		return fmt.Errorf("client certificate for %s: %w", req.user, err)
	}
	if err := pki.WriteKubeconfig(req.out, req.server, ca, certFile, keyFile, req.user); err != nil {
		return err
	}
	klog.FromContext(ctx).Info("Wrote kubeconfig", "path", req.out, "user", req.user, "server", req.server)
	return nil
}
