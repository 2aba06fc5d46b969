// Package apiserver is the HTTP layer of skiff's Kubernetes apiserver: it speaks the
// Kubernetes REST API well enough for the stock kubectl and client-go, on top of the
// per-resource storage.Store (etcd plus watch cache) and the registry.Definition of
// each served resource (defaults, validation, tables).
//
// # Serving
//
// New validates a Config and builds the handler; Run serves it over HTTPS until its
// context ends; Handler returns it for httptest. EnsureDefaultNamespaces creates the
// namespaces every cluster has.
//
// # Requests
//
//   - Authentication: a client certificate signed by Config.ClientCAFile; the user is
//     its CN and the groups its O fields (plus system:authenticated). Anything else
//     gets 401. /healthz, /livez, /readyz and /version answer without a certificate,
//     as kube-apiserver's system:public-info-viewer role allows. Authorization allows
//     every authenticated user: skiff has no RBAC. The review APIs behind kubectl
//     auth can-i and kubectl auth whoami (SelfSubjectAccessReview,
//     SelfSubjectRulesReview, SelfSubjectReview) say so.
//   - REST: /api/v1/... and /apis/<group>/<version>/..., namespaced and
//     cluster-scoped, with get, list, watch (?watch=true), create, update, patch
//     (JSON, merge and strategic merge patches, and server-side apply),
//     delete and deletecollection, and the status, scale-like and binding-like
//     subresources a Definition declares.
//   - Writes follow kube-apiserver: fieldValidation (Strict, Warn, Ignore), dryRun=All,
//     generateName, the NamespaceLifecycle check, Strategy.PrepareForCreate/Update,
//     Default and Validate (422 naming each field), optimistic concurrency (409).
//   - With Config.TypeConverter (built from the OpenAPI schemas) writes record
//     managedFields and server-side apply merges by field ownership, with 409 on
//     conflicts unless forced; without it apply answers 415.
//   - Deletes honour DeleteOptions: preconditions, grace periods through
//     Strategy.GracefulDelete, and propagationPolicy through the garbage collector's
//     finalizers (foregroundDeletion, orphan). An object with finalizers is marked
//     with a deletionTimestamp and removed by the update that empties them.
//   - With a kubelet client certificate (Config.KubeletClientCertFile), pods/log,
//     exec, attach and portforward are proxied to the kubelet API of the pod's node
//     (its InternalIP and kubelet port), connection upgrades included; GET
//     nodes/{name}/proxy/{path} (node_proxy.go) reaches the node's kubelet API, e.g.
//     /stats/summary and /metrics, with ".." refused.
//   - Responses negotiate JSON, YAML or protobuf, and the meta.k8s.io/v1 Table and
//     PartialObjectMetadata(List) transformations kubectl get and metadata informers
//     ask for. Watches stream WatchEvent frames, flushed one by one.
//   - Discovery: legacy (/api, /apis, /apis/<g>, /apis/<g>/<v>) and aggregated
//     discovery v2, generated from the Definitions; /version; OpenAPI is delegated to
//     Config.OpenAPI.
//   - Every error is a metav1.Status with kube-apiserver's code and reason. Every
//     response carries an Audit-Id; each request is logged at V(4).
package apiserver
