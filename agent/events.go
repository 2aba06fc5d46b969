package agent

import (
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	v1 "k8s.io/api/core/v1"
	"strings"
)

// podRef is the event target for pod-level events.
func podRef(pod *v1.Pod) *v1.ObjectReference {
	return &v1.ObjectReference{
		Kind: "Pod", APIVersion: "v1",
		Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID, ResourceVersion: pod.ResourceVersion,
	}
}

// containerRef targets one container, the way kubectl describe groups events.
func containerRef(pod *v1.Pod, name string) *v1.ObjectReference {
	ref := podRef(pod)
	ref.FieldPath = fmt.Sprintf("spec.containers{%s}", name)
	if isInitContainer(pod, name) {
		ref.FieldPath = fmt.Sprintf("spec.initContainers{%s}", name)
	}
	return ref
}

// podDesc is kubelet's "name_namespace(uid)" form used in messages.
func podDesc(pod *v1.Pod) string {
	return fmt.Sprintf("%s_%s(%s)", pod.Name, pod.Namespace, pod.UID)
}

// isNotFound reports a runtime object that is already gone: gRPC NotFound from a remote
// runtime, or the "not found" wording of in-process ones.
func isNotFound(err error) bool {
	if err == nil {
		return false
	}
	if s, ok := status.FromError(err); ok && s.Code() == codes.NotFound {
		return true
	}
	return strings.Contains(err.Error(), "not found")
}
