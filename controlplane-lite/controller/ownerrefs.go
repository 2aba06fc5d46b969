package controller

import (
	"encoding/json"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// The patches below change ownership the way kube's controllers do. ownerReferences merge
// by uid in a strategic merge patch, so adding or removing one owner needs no
// resourceVersion and does not conflict with unrelated writes (the agent's status
// updates). metadata.uid in the patch is a precondition: the apiserver rejects the patch
// if the object was replaced by a namesake.

// addOwnerPatch adds ref to the owners of the object with uid.
func addOwnerPatch(uid types.UID, ref metav1.OwnerReference) ([]byte, error) {
	return json.Marshal(map[string]interface{}{"metadata": map[string]interface{}{
		"uid":             uid,
		"ownerReferences": []metav1.OwnerReference{ref},
	}})
}

// removeOwnersPatch removes the owners with the given uids from the object with uid.
func removeOwnersPatch(uid types.UID, owners ...types.UID) ([]byte, error) {
	refs := make([]map[string]interface{}, 0, len(owners))
	for _, owner := range owners {
		refs = append(refs, map[string]interface{}{"$patch": "delete", "uid": owner})
	}
	return json.Marshal(map[string]interface{}{"metadata": map[string]interface{}{
		"uid":             uid,
		"ownerReferences": refs,
	}})
}

// finalizersPatch replaces the finalizers of the object at resourceVersion, a JSON merge
// patch that fails with a conflict if the object changed since it was read.
func finalizersPatch(uid types.UID, resourceVersion string, finalizers []string) ([]byte, error) {
	if finalizers == nil {
		finalizers = []string{}
	}
	meta := map[string]interface{}{"uid": uid, "finalizers": finalizers}
	if resourceVersion != "" {
		meta["resourceVersion"] = resourceVersion
	}
	return json.Marshal(map[string]interface{}{"metadata": meta})
}

// ownerRefsPatch sets the owners of the object with uid, a JSON merge patch that fails
// with a conflict if the object changed since resourceVersion.
func ownerRefsPatch(uid types.UID, resourceVersion string, refs []metav1.OwnerReference) ([]byte, error) {
	if refs == nil {
		refs = []metav1.OwnerReference{}
	}
	meta := map[string]interface{}{"uid": uid, "ownerReferences": refs}
	if resourceVersion != "" {
		meta["resourceVersion"] = resourceVersion
	}
	return json.Marshal(map[string]interface{}{"metadata": meta})
}
