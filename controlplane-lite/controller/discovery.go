package controller

import (
	"context"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/klog/v2"
)

// discoveryRetry is how often a controller that cannot start without discovery asks again.
const discoveryRetry = time.Second

// servedResource is one resource the apiserver serves, in its preferred version.
type servedResource struct {
	gvr        schema.GroupVersionResource
	kind       schema.GroupKind
	namespaced bool
}

// servedResources lists the resources (no subresources) the apiserver serves in their
// preferred versions with all of verbs; namespacedOnly keeps the namespaced ones. A group
// that fails discovery is left out and reported in the error next to the others.
func servedResources(d discovery.DiscoveryInterface, namespacedOnly bool, verbs []string) ([]servedResource, error) {
	var lists []*metav1.APIResourceList
	var err error
	if namespacedOnly {
		lists, err = discovery.ServerPreferredNamespacedResources(d)
	} else {
		lists, err = discovery.ServerPreferredResources(d)
	}
	if err != nil && !discovery.IsGroupDiscoveryFailedError(err) {
		return nil, fmt.Errorf("discover served resources: %w", err)
	}
	lists = discovery.FilteredBy(discovery.SupportsAllVerbs{Verbs: verbs}, lists)
	var out []servedResource
	for _, list := range lists {
		gv, parseErr := schema.ParseGroupVersion(list.GroupVersion)
		if parseErr != nil {
			continue
		}
		for _, r := range list.APIResources {
			if strings.Contains(r.Name, "/") {
				continue
			}
			out = append(out, servedResource{
				gvr:        gv.WithResource(r.Name),
				kind:       schema.GroupKind{Group: gv.Group, Kind: r.Kind},
				namespaced: r.Namespaced,
			})
		}
	}
	return out, err
}

// waitForResources is servedResources, asked again until discovery answers in full or
// ctx ends: a controller started with the apiserver may ask before it is ready.
func waitForResources(ctx context.Context, d discovery.DiscoveryInterface, namespacedOnly bool, verbs []string) ([]servedResource, error) {
	var out []servedResource
	err := wait.PollUntilContextCancel(ctx, discoveryRetry, true, func(ctx context.Context) (bool, error) {
		resources, err := servedResources(d, namespacedOnly, verbs)
		if err != nil {
			klog.FromContext(ctx).V(2).Info("Discovery failed, retrying", "err", err)
			return false, nil
		}
		out = resources
		return true, nil
	})
	return out, err
}
