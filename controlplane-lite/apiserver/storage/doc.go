// Package storage keeps the objects of one resource in etcd exactly where and how
// kube-apiserver keeps them, with a watch cache in front for lists and watches.
//
// # Layout in etcd
//
// An object lives under <Prefix>/<namespace>/<name> (or <Prefix>/<name> when cluster-scoped),
// e.g. /registry/replicasets/default/my-replicaset or /registry/minions/node1. The value is
// kube-apiserver's storage encoding: the "k8s\x00" magic followed by a protobuf
// runtime.Unknown that names apiVersion and kind and wraps the object's protobuf bytes.
// metadata.resourceVersion is never stored: on every read it is set from the key's etcd
// mod_revision, and a list's resourceVersion is the etcd revision the list was read at.
// Objects returned by Create, Get, GuaranteedUpdate, Delete and Watch carry apiVersion and
// kind; list items do not, as in kube-apiserver's responses.
//
// # Writes
//
// Create is a transaction on "key does not exist" (AlreadyExists otherwise).
// GuaranteedUpdate reads, hands a private copy to the caller's UpdateFunc and writes the
// result with a compare-and-swap on the mod_revision, retrying when another writer won; an
// object returned with a stale resourceVersion fails with Conflict, and an unchanged object
// is not written at all. Delete checks DeleteOptions preconditions the same way. Every error
// is an *apierrors.StatusError built with the Resource's GroupResource. Objects of a
// Resource with a TTL (Events) are written with an etcd lease, shared by the writes of a
// short period as in kube-apiserver, so etcd deletes them and watchers see DELETED.
//
// # Watch cache
//
// New lists the resource once and then follows a single etcd watch on its prefix. The cache
// holds the current objects, with their labels and selectable fields computed once by
// AttrFunc, and a window of the most recent events (a few thousand). Each client watch
// gets the events that pass its namespace, label and field selector (a pod agent's
// spec.nodeName=node1 watch sees only its pods); an update that moves an object into or
// out of a selector is an ADDED or DELETED for that watcher. Watchers whose field selector
// pins a field to a value are indexed by it, so a pod event is matched only against the
// agent of its node (and the scheduler's spec.nodeName= watch), not against every agent.
//
// A watch resumes after any resourceVersion still in the window, waiting briefly for the
// cache to reach it (a list from etcd returns etcd's global revision, which the cache
// reaches through etcd progress notifications); an older one gets a single ERROR event
// with a 410 "too old resource version" Status, and client-go then lists again. Bookmarks
// are sent every few seconds to watchers that allow them, and the WatchList protocol
// (sendInitialEvents=true, client-go's default since 1.35) ends its initial ADDED events
// with the "k8s.io/initial-events-end" bookmark. If etcd compacted the history the cache's
// own watch needs to resume, the cache lists again and closes every watcher.
//
// Events are queued per watcher without blocking the cache; a watcher that falls a full
// buffer behind is closed and its client re-watches from the last resourceVersion it saw.
// Objects delivered by Watch are shared by every watcher and must not be modified;
// everything else a Store returns belongs to the caller.
//
// # Reads
//
// Get and List with resourceVersion "" are quorum reads from etcd (List with limit and
// continue pages through etcd at the first page's revision). List with resourceVersion
// "0" is served from the cache as it is; with a resourceVersion N (NotOlderThan), the cache
// first waits, briefly, until it has seen N.
package storage
