package agent

import (
	"encoding/json"
	"net/http"
	"sort"

	v1 "k8s.io/api/core/v1"
)

// servePods answers the kubelet API's /pods: the pods bound to this node as the agent knows
// them, each with the newest status it wrote (which may be ahead of the apiserver's copy
// the informer holds), as a v1 PodList.
func (a *Agent) servePods(w http.ResponseWriter, r *http.Request) {
	list := v1.PodList{}
	list.Kind, list.APIVersion = "PodList", "v1"
	for _, pod := range a.source.list() {
		if known := a.statuses.newestKnown(pod); known != nil {
			pod = known
		}
		list.Items = append(list.Items, *pod)
	}
	sort.Slice(list.Items, func(i, j int) bool {
		a, b := list.Items[i], list.Items[j]
		return a.Namespace < b.Namespace || a.Namespace == b.Namespace && a.Name < b.Name
	})
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(&list); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}
