package apiserver

import (
	"context"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-sh/skiff/controlplane-lite/apiserver/storage"
)

// racingStore adds a finalizer to the object right before each Delete reaches etcd, as
// a PATCH that lands between the DELETE handler's read and its delete would.
type racingStore struct {
	storage.Store
	finalizer string
}

func (s racingStore) Delete(ctx context.Context, namespace, name string, pre *metav1.Preconditions,
	validate storage.ValidateDeleteFunc) (runtime.Object, error) {
	_, err := s.GuaranteedUpdate(ctx, namespace, name, func(cur runtime.Object) (runtime.Object, error) {
		lease := cur.(*coordinationv1.Lease)
		lease.Finalizers = append(lease.Finalizers, s.finalizer)
		return lease, nil
	})
	if err != nil {
		return nil, err
	}
	return s.Store.Delete(ctx, namespace, name, pre, validate)
}

// TestDeleteRacingFinalizerKeepsObject: a finalizer added after the DELETE handler read
// the object keeps it; the DELETE marks it instead.
func TestDeleteRacingFinalizerKeepsObject(t *testing.T) {
	defs, stores := etcdStores(t)
	leasesGR := schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}
	stores[leasesGR] = racingStore{Store: stores[leasesGR], finalizer: "example.com/keep"}
	s := newTestServerWith(t, func(cfg *Config) { cfg.Definitions, cfg.Stores = defs, stores })
	leases := kubernetes.NewForConfigOrDie(s.restConfig()).CoordinationV1().Leases("default")
	ctx := context.Background()

	created, err := leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "race"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := leases.Delete(ctx, "race", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	got, err := leases.Get(ctx, "race", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the lease was deleted with the finalizer added meanwhile: %v", err)
	}
	if got.UID != created.UID || got.DeletionTimestamp == nil || len(got.Finalizers) != 1 {
		t.Errorf("lease = uid %s deletionTimestamp %v finalizers %v, want the same lease marked for deletion",
			got.UID, got.DeletionTimestamp, got.Finalizers)
	}
}
