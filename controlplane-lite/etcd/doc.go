// Package etcd runs the single-node etcd that skiff embeds, and opens clients to it or to an
// external etcd cluster.
//
// Start runs etcd inside the skiff process (go.etcd.io/etcd/server/v3/embed) with its member
// directory at Config.DataDir, listening on 127.0.0.1 over plain HTTP so that
//
//	etcdctl --endpoints=127.0.0.1:2379 get /registry/replicasets/default/my-replicaset -w json
//
// works on the node as in the upstream walkthrough. Start returns once the member is ready to
// serve; a restart on the same DataDir keeps every key. etcd's own zap logging is kept at warn
// level so that it does not drown skiff's klog output.
//
// NewClient opens a clientv3.Client to the embedded server (Server.Endpoints) or to the
// endpoints given with --etcd-servers, and checks that they answer before returning it.
// Its zap logging, like the server's, goes through klog at warn level and above.
//
// Tests that need a real etcd use etcdtest.Start: a member in the test's temp dir on free
// loopback ports, closed when the test ends.
//
// Like kube-apiserver, skiff relies on etcd's revision history for watches; the embedded member
// compacts that history periodically (every few minutes) so the database does not grow
// without bound. An external cluster must be compacted by its operator.
package etcd
