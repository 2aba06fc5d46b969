package controller

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// runPeriodic runs pass every period once the informers have synced, until ctx ends: the
// shape of the controllers that look at the whole cluster on a timer (node lifecycle, pod
// GC) rather than at one object from a workqueue.
func runPeriodic(ctx context.Context, name string, synced []cache.InformerSynced, period time.Duration,
	pass func(context.Context) error) {
	logger := klog.FromContext(ctx)
	logger.Info("Starting " + name)
	defer logger.Info("Shutting down " + name)
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return
	}
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		if err := pass(ctx); err != nil {
			logger.Error(err, "A pass of the "+name+" failed")
		}
	}, period)
}
