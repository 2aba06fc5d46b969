// Package network owns pod networking through CNI (libcni): it writes a conflist from the
// node's pod CIDR (bridge + host-local + portmap + loopback) unless the user supplies one,
// creates and removes pod network namespaces, and runs CNI ADD/CHECK/DEL for sandboxes.
//
// The door:
//
//	m, err := network.New(network.Config{...})   // validates the config, touches nothing
//	m.SetPodCIDR(cidr)                           // (re)writes the generated conflist
//	m.Ready() error                              // nil once a network config is loaded
//	ns, err := m.CreateNetns(sandboxID)          // a named, bind-mounted netns under NetnsDir
//	res, err := m.Attach(ctx, network.Pod{...})  // CNI ADD; res.IPs holds the pod IPs
//	err = m.Status(ctx, network.Pod{...})        // CNI CHECK
//	err = m.Detach(ctx, network.Pod{...})        // CNI DEL (idempotent, also without netns)
//	err = m.RemoveNetns(ns)                      // unmount and remove (idempotent)
//	err = m.SyncRoutes(ctx, []network.Route{...}) // other nodes' pod CIDRs via their node IPs, reached without NAT
//	held, err := m.Sandboxes()                   // sandbox ID -> netns, for everything holding network state
//	err = m.Cleanup(ctx)                         // remove the bridge, the plugins' iptables rules, our routes
//	err = network.InNetns(ns, func() error {...}) // run code (e.g. a port-forward dial) in a netns
//
// Every path (conflist dir, IPAM data dir, netns dir, CNI cache dir) and the bridge name
// come from Config so that two instances can share a host.
//
// The generated network is named Config.NetworkName, and the plugins tag their iptables
// rules with that name; Cleanup finds them by it. Its bridge does not masquerade per pod:
// one chain per pod CIDR (masquerade.go, named and tagged like the plugins' own) NATs what
// leaves the cluster's pod CIDRs. A pod that maps no host port is attached without
// portmap, and loopback (a network of its own, "skiff-loopback") is added beside the pod
// network; a DEL uses the config its ADD cached.
package network
