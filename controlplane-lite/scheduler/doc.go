// Package scheduler assigns pods to nodes, seeing the apiserver only through client-go.
//
// It watches pods and nodes with shared informers. The pod watch is not filtered by
// spec.nodeName: bound pods are needed to account their requests to their nodes (kube's
// scheduler watches all non-terminal pods for the same reason). Pods that have no spec.nodeName and
// name this scheduler in spec.schedulerName enter a rate-limited work queue; bound pods
// (and pods this scheduler has assumed but whose binding has not come back through the
// informer yet) are accounted to their nodes in a cache.
//
// For each pod, the filters keep the nodes that are Ready (a node that is not is treated as
// carrying kube's node.kubernetes.io/not-ready or unreachable NoSchedule taint), not
// cordoned, whose NoSchedule/NoExecute taints the pod tolerates, that match
// spec.nodeSelector and required node affinity, have the requested cpu, memory,
// ephemeral-storage, extended resources and pod slots free (allocatable minus the requests
// of the pods already there), and have the pod's host ports free. The score is kube's
// LeastAllocated over cpu and memory (non-zero defaults for containers without requests);
// ties are broken at random.
//
// The chosen node is assumed in the cache at once, so the next pod sees its resources
// taken, and the pod is bound through the pods/binding subresource in the background. A pod
// that fits nowhere gets a PodScheduled=False condition with reason Unschedulable and a
// message in kube's form ("0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had
// untolerated taint {dedicated: gpu}. preemption: 0/3 nodes are available: 1 No preemption
// victims found for incoming pod, 2 Preemption is not helpful for scheduling.": counts
// grouped and sorted as kube does; skiff never preempts, so a node where kube could have
// looked for victims is reported as having none) plus a FailedScheduling event; it is retried with
// back-off, and at once when nodes or bound pods change. A successful binding records a
// Scheduled event ("Successfully assigned default/x to node1").
//
// Pods that already name a node in spec.nodeName are not scheduled. Setting
// PodScheduled=True on binding is the apiserver's job, as in kube.
package scheduler
