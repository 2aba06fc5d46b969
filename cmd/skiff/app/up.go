package app

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/skiff-sh/skiff/controlplane-lite/pki"
)

// runUp runs the control plane, the CRI server and the agent in one process. The agent
// talks to the apiserver and to the CRI server through their real endpoints, as it would
// across machines.
func runUp(ctx context.Context, o *Options) error {
	g, ctx := errgroup.WithContext(ctx)
	cp, err := startControlPlane(ctx, g, o)
	if err != nil {
		return err
	}
	nodeUser := "system:node:" + o.NodeName
	certFile, keyFile, err := cp.ca.EnsureClientCert("node-"+o.NodeName, nodeUser, []string{"system:nodes"})
	if err != nil {
		return fmt.Errorf("node certificate: %w", err)
	}
	if err := pki.WriteKubeconfig(o.nodeKubeconfig(), cp.server, cp.ca, certFile, keyFile, nodeUser); err != nil {
		return fmt.Errorf("node kubeconfig: %w", err)
	}
	endpoint, netManager, err := startRuntime(ctx, g, o)
	if err != nil {
		return err
	}
	tls, err := upAgentTLS(cp, o)
	if err != nil {
		return err
	}
	if err := startAgent(ctx, g, o, o.nodeKubeconfig(), endpoint, tls); err != nil {
		return err
	}
	if err := startNodeRoutes(ctx, g, o, o.nodeKubeconfig(), netManager); err != nil {
		return err
	}
	return g.Wait()
}

// upAgentTLS gives the in-process agent's kubelet API a serving certificate from the cluster
// CA and trusts that CA for callers (the apiserver proxying logs, exec and port-forward).
func upAgentTLS(cp *controlPlane, o *Options) (agentTLS, error) {
	hosts := append([]string{o.NodeName}, servingHosts()...)
	if o.NodeIP != "" {
		hosts = append(hosts, o.NodeIP)
	}
	certFile, keyFile, err := cp.ca.EnsureServingCert("kubelet-"+o.NodeName, hosts)
	if err != nil {
		return agentTLS{}, fmt.Errorf("kubelet serving certificate: %w", err)
	}
	return agentTLS{servingCertFile: certFile, servingKeyFile: keyFile, clientCAFile: cp.ca.CertFile()}, nil
}
