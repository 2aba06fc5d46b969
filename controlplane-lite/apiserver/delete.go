package apiserver

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-sh/skiff/controlplane-lite/apiserver/storage"
)

// defaultGracePeriod applies when a strategy asks for a graceful delete without
// naming a grace period (kube's default terminationGracePeriodSeconds).
const defaultGracePeriod int64 = 30

// deleteOptions reads DeleteOptions from the body or, without a body, from the query,
// as kube-apiserver does.
func (s *Server) deleteOptions(r *http.Request) (*metav1.DeleteOptions, error) {
	opts := &metav1.DeleteOptions{}
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	if len(body) > 0 {
		if err := s.decodeDeleteOptions(body, r.Header.Get("Content-Type"), opts); err != nil {
			return nil, err
		}
	} else if err := s.params.DecodeParameters(r.URL.Query(), metav1.SchemeGroupVersion, opts); err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if len(opts.DryRun) == 0 {
		opts.DryRun = r.URL.Query()["dryRun"]
	}
	if _, err := dryRun(opts.DryRun); err != nil {
		return nil, err
	}
	if opts.OrphanDependents != nil && opts.PropagationPolicy != nil {
		return nil, apierrors.NewBadRequest("orphanDependents and propagationPolicy cannot both be set")
	}
	if p := opts.PropagationPolicy; p != nil {
		switch *p {
		case metav1.DeletePropagationOrphan, metav1.DeletePropagationBackground, metav1.DeletePropagationForeground:
		default:
			return nil, apierrors.NewBadRequest(fmt.Sprintf("propagationPolicy %q is not one of Orphan, Background, Foreground", *p))
		}
	}
	return opts, nil
}

// decodeDeleteOptions accepts DeleteOptions of any group version: clients send
// them in the version they talk (apps/v1, v1, meta.k8s.io/v1).
func (s *Server) decodeDeleteOptions(body []byte, contentType string, opts *metav1.DeleteOptions) error {
	mt := mediaTypeJSON
	if contentType != "" {
		if parsed, _, err := mime.ParseMediaType(contentType); err == nil {
			mt = parsed
		}
	}
	info := s.serializerFor(mt)
	if info.Serializer == nil {
		return newStatusError(http.StatusUnsupportedMediaType, metav1.StatusReasonUnsupportedMediaType,
			fmt.Sprintf("unsupported Content-Type %q for DeleteOptions", contentType))
	}
	_, gvk, err := info.Serializer.Decode(body, nil, opts)
	if err != nil {
		return apierrors.NewBadRequest(fmt.Sprintf("decode DeleteOptions: %v", err))
	}
	if gvk != nil && gvk.Kind != "DeleteOptions" {
		return apierrors.NewBadRequest(fmt.Sprintf("the body is a %s, not DeleteOptions", gvk.Kind))
	}
	return nil
}

func (s *Server) serveDelete(w http.ResponseWriter, r *http.Request, info *requestInfo) {
	target, err := s.negotiate(r)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	opts, err := s.deleteOptions(r)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	out, deleted, err := s.delete(r.Context(), info.res, info.namespace, info.name, opts)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	if deleted {
		writeStatus(w, deletedStatus(info.res, out))
		return
	}
	code := http.StatusOK
	if p := opts.PropagationPolicy; p != nil && *p == metav1.DeletePropagationForeground {
		// The object waits for its dependents: kube-apiserver answers 202 Accepted.
		code = http.StatusAccepted
	}
	writeObject(w, code, target, withKind(out, info.res.gvk()))
}

// deletedStatus is kube-apiserver's answer when an object is gone.
func deletedStatus(res *resource, obj runtime.Object) metav1.Status {
	st := metav1.Status{Status: metav1.StatusSuccess, Code: http.StatusOK, Details: &metav1.StatusDetails{
		Group: res.def.GroupResource.Group,
		Kind:  res.def.GroupResource.Resource,
	}}
	if m, err := meta.Accessor(obj); err == nil {
		st.Details.Name, st.Details.UID = m.GetName(), m.GetUID()
	}
	return st
}

// finalizingStrategy is implemented by the strategies of resources with finalizers of
// their own next to metadata.finalizers: a namespace waits for spec.finalizers (the
// namespace controller's "kubernetes") until its contents are gone.
type finalizingStrategy interface {
	// Finalizing reports whether obj still waits for such finalizers.
	Finalizing(obj runtime.Object) bool
	// PrepareForDelete updates obj as a delete marks it (a namespace turns Terminating).
	PrepareForDelete(obj runtime.Object)
}

// errMustMark tells delete that the object it was about to remove needs a
// deletionTimestamp instead: a finalizer or a grace period appeared meanwhile.
var errMustMark = errors.New("object must be marked for deletion")

// delete removes the object, or marks it with a deletionTimestamp when it must wait:
// for its grace period (Strategy.GracefulDelete) or for finalizers, including the
// garbage collector's for Foreground and Orphan propagation. It reports whether the
// object is gone.
func (s *Server) delete(ctx context.Context, res *resource, namespace, name string, opts *metav1.DeleteOptions) (runtime.Object, bool, error) {
	if err := admitNamespaceDelete(res, name); err != nil {
		return nil, false, err
	}
	current, err := res.store.Get(ctx, namespace, name)
	if err != nil {
		return nil, false, err
	}
	if err := storage.CheckPreconditions(res.def.GroupResource, name, opts.Preconditions, current); err != nil {
		return nil, false, err
	}
	mark := func(cur runtime.Object) (runtime.Object, error) {
		if err := storage.CheckPreconditions(res.def.GroupResource, name, opts.Preconditions, cur); err != nil {
			return nil, err
		}
		return markForDeletion(ctx, res, cur, opts)
	}
	if len(opts.DryRun) > 0 {
		if !mustMark(ctx, res, current, opts) {
			return current, true, nil
		}
		out, err := mark(current.DeepCopyObject())
		return out, false, err
	}
	if !mustMark(ctx, res, current, opts) {
		out, err := s.deleteNow(ctx, res, current, opts)
		if !errors.Is(err, errMustMark) {
			return out, err == nil, err
		}
	}
	out, err := res.store.GuaranteedUpdate(ctx, namespace, name, mark)
	if err != nil {
		return nil, false, err
	}
	return s.finishDeletion(ctx, res, out)
}

// deleteNow removes current from storage, unless the stored state it would remove must
// be marked instead (errMustMark): the decision is taken again on exactly the revision
// deleted, so a finalizer added since current was read keeps the object.
func (s *Server) deleteNow(ctx context.Context, res *resource, current runtime.Object, opts *metav1.DeleteOptions) (runtime.Object, error) {
	m, err := meta.Accessor(current)
	if err != nil {
		return nil, err
	}
	pre := opts.Preconditions
	if pre == nil {
		// Do not remove an object of the same name created meanwhile.
		uid := m.GetUID()
		pre = &metav1.Preconditions{UID: &uid}
	}
	validate := func(stored runtime.Object) error {
		if mustMark(ctx, res, stored, opts) {
			return errMustMark
		}
		return nil
	}
	return res.store.Delete(ctx, m.GetNamespace(), m.GetName(), pre, validate)
}

// mustMark reports whether deleting obj only marks it: it has a grace period to wait
// for, or finalizers (its own, or the garbage collector's the options ask for).
func mustMark(ctx context.Context, res *resource, obj runtime.Object, opts *metav1.DeleteOptions) bool {
	m, err := meta.Accessor(obj)
	if err != nil {
		return false
	}
	if fs, ok := res.def.Strategy.(finalizingStrategy); ok && fs.Finalizing(obj) {
		return true
	}
	return gracePeriod(ctx, res, obj, opts.DeepCopy()) > 0 || len(gcFinalizers(m.GetFinalizers(), propagation(opts))) > 0
}

// markForDeletion sets the deletion timestamp and the garbage collector's finalizers on
// a private copy of the stored object.
func markForDeletion(ctx context.Context, res *resource, cur runtime.Object, opts *metav1.DeleteOptions) (runtime.Object, error) {
	cm, err := meta.Accessor(cur)
	if err != nil {
		return nil, err
	}
	grace := gracePeriod(ctx, res, cur, opts)
	cm.SetFinalizers(gcFinalizers(cm.GetFinalizers(), propagation(opts)))
	markDeleted(cm, grace)
	if fs, ok := res.def.Strategy.(finalizingStrategy); ok {
		fs.PrepareForDelete(cur)
	}
	return cur, nil
}

// gracePeriod is 0 for an immediate delete, or the seconds to wait.
func gracePeriod(ctx context.Context, res *resource, obj runtime.Object, opts *metav1.DeleteOptions) int64 {
	if !res.def.Strategy.GracefulDelete(ctx, obj, opts) {
		return 0
	}
	if g := opts.GracePeriodSeconds; g != nil && *g > 0 {
		return *g
	}
	if opts.GracePeriodSeconds != nil {
		// A strategy that asked for a graceful delete with a period of 0 or less
		// still waits a little, as kube-apiserver treats negative periods as 1.
		return 1
	}
	return defaultGracePeriod
}

// markDeleted sets the deletion timestamp, or moves an existing one earlier when the
// new grace period is shorter (kubectl delete --grace-period after a delete).
func markDeleted(m metav1.Object, grace int64) {
	deadline := metav1.NewTime(time.Now().Add(time.Duration(grace) * time.Second).Truncate(time.Second))
	if m.GetDeletionTimestamp() == nil {
		m.SetDeletionTimestamp(&deadline)
		m.SetDeletionGracePeriodSeconds(&grace)
		return
	}
	if old := m.GetDeletionGracePeriodSeconds(); old == nil || *old > grace {
		if deadline.Before(m.GetDeletionTimestamp()) {
			m.SetDeletionTimestamp(&deadline)
		}
		m.SetDeletionGracePeriodSeconds(&grace)
	}
}

// propagation is the requested propagation policy; "" leaves finalizers as they are
// (kube's default, Background, for every resource skiff serves).
func propagation(opts *metav1.DeleteOptions) metav1.DeletionPropagation {
	switch {
	case opts.PropagationPolicy != nil:
		return *opts.PropagationPolicy
	case opts.OrphanDependents != nil && *opts.OrphanDependents:
		return metav1.DeletePropagationOrphan
	case opts.OrphanDependents != nil:
		return metav1.DeletePropagationBackground
	}
	return ""
}

// gcFinalizers adds or removes the garbage collector's finalizers for a policy.
func gcFinalizers(existing []string, policy metav1.DeletionPropagation) []string {
	var add, remove []string
	switch policy {
	case metav1.DeletePropagationForeground:
		add, remove = []string{metav1.FinalizerDeleteDependents}, []string{metav1.FinalizerOrphanDependents}
	case metav1.DeletePropagationOrphan:
		add, remove = []string{metav1.FinalizerOrphanDependents}, []string{metav1.FinalizerDeleteDependents}
	case metav1.DeletePropagationBackground:
		remove = []string{metav1.FinalizerOrphanDependents, metav1.FinalizerDeleteDependents}
	}
	out := make([]string, 0, len(existing)+len(add))
	for _, f := range existing {
		if !contains(remove, f) {
			out = append(out, f)
		}
	}
	for _, f := range add {
		if !contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// serveDeleteCollection deletes every object the selectors match, each as a single
// delete would, and answers with the list of what it deleted or marked.
func (s *Server) serveDeleteCollection(w http.ResponseWriter, r *http.Request, info *requestInfo) {
	ctx := r.Context()
	target, err := s.negotiate(r)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	opts, err := s.deleteOptions(r)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	listOpts, _, err := s.listOptions(r, info.res)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	list, err := info.res.store.List(ctx, info.namespace, listOpts)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	done := make([]runtime.Object, 0, len(items))
	for _, item := range items {
		m, err := meta.Accessor(item)
		if err != nil {
			writeStatusError(w, err)
			return
		}
		out, _, err := s.delete(ctx, info.res, m.GetNamespace(), m.GetName(), opts.DeepCopy())
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			writeStatusError(w, err)
			return
		}
		done = append(done, out)
	}
	if err := meta.SetList(list, done); err != nil {
		writeStatusError(w, err)
		return
	}
	writeObject(w, http.StatusOK, target, withKind(list, info.res.listGVK()))
}
