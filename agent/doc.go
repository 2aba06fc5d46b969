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
package agent
