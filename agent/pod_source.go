package agent

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

const uidIndex = "uid"

type podOp int

const (
	podSet podOp = iota // added or updated
	podRemoved
)

// podUpdate is one change to a pod bound to this node, as the informer saw it.
type podUpdate struct {
	op  podOp
	pod *v1.Pod
}

// podSource watches the pods bound to this node, and only those: the list-watch carries the
// field selector spec.nodeName=<node>, so the apiserver never sends us anyone else's pods.
type podSource struct {
	factory  informers.SharedInformerFactory
	informer cache.SharedIndexInformer
	updates  chan podUpdate
}

func newPodSource(client kubernetes.Interface, nodeName string) *podSource {
	selector := fields.OneTermEqualSelector("spec.nodeName", nodeName).String()
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = selector }))
	informer := factory.Core().V1().Pods().Informer()
	return &podSource{factory: factory, informer: informer, updates: make(chan podUpdate, 64)}
}

// run starts the informer and feeds its events into updates until ctx ends.
func (s *podSource) run(ctx context.Context) {
	logger := klog.FromContext(ctx)
	if err := s.informer.AddIndexers(cache.Indexers{uidIndex: podUIDIndexFunc}); err != nil {
		logger.Error(err, "Adding the pod UID index")
	}
	send := func(op podOp, obj any) {
		pod, ok := podFromObj(obj)
		if !ok {
			return
		}
		select {
		case s.updates <- podUpdate{op: op, pod: pod}:
		case <-ctx.Done():
		}
	}
	_, err := s.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { send(podSet, obj) },
		UpdateFunc: func(_, obj any) { send(podSet, obj) },
		DeleteFunc: func(obj any) { send(podRemoved, obj) },
	})
	if err != nil {
		logger.Error(err, "Adding the pod event handler")
		return
	}
	s.factory.Start(ctx.Done())
	<-ctx.Done()
	s.factory.Shutdown()
}

func (s *podSource) waitForSync(ctx context.Context) bool {
	return cache.WaitForCacheSync(ctx.Done(), s.informer.HasSynced)
}

// podByUID returns the informer's copy of a pod, or nil when the apiserver has no such pod.
func (s *podSource) podByUID(uid types.UID) *v1.Pod {
	objs, err := s.informer.GetIndexer().ByIndex(uidIndex, string(uid))
	if err != nil || len(objs) == 0 {
		return nil
	}
	pod, _ := objs[0].(*v1.Pod)
	return pod
}

func (s *podSource) list() []*v1.Pod {
	var pods []*v1.Pod
	for _, obj := range s.informer.GetStore().List() {
		if pod, ok := obj.(*v1.Pod); ok {
			pods = append(pods, pod)
		}
	}
	return pods
}

func podUIDIndexFunc(obj any) ([]string, error) {
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return nil, fmt.Errorf("expected a pod, got %T", obj)
	}
	return []string{string(pod.UID)}, nil
}

// podFromObj unwraps the tombstones a delete event may carry.
func podFromObj(obj any) (*v1.Pod, bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, ok := obj.(*v1.Pod)
	return pod, ok
}
