package storage

import (
	"context"
	"errors"
	"fmt"

	rpctypes "go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// conflictMessage is kube-apiserver's wording for a failed optimistic-concurrency check;
// clients (kubectl apply, client-go's RetryOnConflict users) recognise it.
const conflictMessage = "the object has been modified; please apply your changes to the latest version and try again"

// internalError wraps an etcd or codec failure into a Status the REST layer can return:
// 413 for an object over etcd's request limit, 504 for timeouts, 500 otherwise.
func internalError(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, rpctypes.ErrRequestTooLarge):
		return apierrors.NewRequestEntityTooLargeError(err.Error())
	case errors.Is(err, context.DeadlineExceeded), errors.Is(ctx.Err(), context.DeadlineExceeded),
		errors.Is(err, rpctypes.ErrTimeout), errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail):
		return apierrors.NewTimeoutError(fmt.Sprintf("request did not complete within the allowed duration: %v", err), 1)
	}
	return apierrors.NewInternalError(err)
}

func conflictError(gr schema.GroupResource, name string) error {
	return apierrors.NewConflict(gr, name, errors.New(conflictMessage))
}

// tooOldError is the 410 Gone a client gets when the history it asks for is no longer kept;
// client-go's reflector answers it with a fresh list.
func tooOldError(requested, oldest int64) *apierrors.StatusError {
	return apierrors.NewResourceExpired(fmt.Sprintf("too old resource version: %d (%d)", requested, oldest))
}

// tooLargeError tells a client that the cache did not reach its resourceVersion in time;
// kube-apiserver answers 504 with reason ResourceVersionTooLarge and Retry-After 1.
func tooLargeError(requested, current int64) error {
	err := apierrors.NewTimeoutError(fmt.Sprintf("Too large resource version: %d, current: %d", requested, current), 1)
	err.ErrStatus.Details.Causes = []metav1.StatusCause{{
		Type:    metav1.CauseTypeResourceVersionTooLarge,
		Message: "Too large resource version",
	}}
	return err
}
