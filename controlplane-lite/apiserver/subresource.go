package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/controlplane-lite/apiserver/registry"
)

// Subresources come in three shapes, told apart by what the Definition provides:
//   - status (Status strategy): the parent object, written with the status strategy;
//   - derived (Get and Apply, e.g. scale): an object of its own kind computed from the
//     parent; writes go through Apply and then the parent's update strategy;
//   - action (Apply only, e.g. binding): created with POST, applied to the parent as is,
//     since the parent's update validation would forbid the change it makes.
func (s *Server) serveSubresource(w http.ResponseWriter, r *http.Request, info *requestInfo) {
	res := info.res
	if contains(res.kubeletSubs, info.subresource) {
		s.serveKubeletProxy(w, r, info)
		return
	}
	if res.def.GroupResource == namespacesGR() && info.subresource == "finalize" {
		s.serveFinalize(w, r, info)
		return
	}
	sub, ok := res.def.Subresources[info.subresource]
	if !ok {
		writeStatusError(w, notFoundPath())
		return
	}
	if !contains(sub.Verbs, info.verb) {
		writeStatusError(w, apierrors.NewMethodNotSupported(schema.GroupResource{Group: res.gvr.Group, Resource: res.gvr.Resource + "/" + info.subresource}, info.verb))
		return
	}
	switch {
	case sub.Status != nil:
		s.serveStatus(w, r, info, sub.Status)
	case sub.Get != nil:
		s.serveDerived(w, r, info, sub)
	case info.verb == "create":
		s.serveAction(w, r, info, sub)
	default:
		writeStatusError(w, apierrors.NewMethodNotSupported(res.def.GroupResource, info.verb))
	}
}

// serveFinalize serves PUT namespaces/{name}/finalize, through which the namespace
// controller removes spec.finalizers; a terminating namespace whose last finalizer goes
// is removed.
func (s *Server) serveFinalize(w http.ResponseWriter, r *http.Request, info *requestInfo) {
	if info.verb != "update" {
		writeStatusError(w, apierrors.NewMethodNotSupported(schema.GroupResource{Resource: "namespaces/finalize"}, info.verb))
		return
	}
	s.serveReplace(w, r, info, registry.NamespaceFinalizeStrategy())
}

func (s *Server) serveStatus(w http.ResponseWriter, r *http.Request, info *requestInfo, strategy registry.StatusStrategy) {
	switch info.verb {
	case "get":
		s.serveGet(w, r, info)
	case "update":
		s.serveReplace(w, r, info, strategy)
	case "patch":
		s.servePatchWith(w, r, info, strategy)
	default:
		writeStatusError(w, apierrors.NewMethodNotSupported(info.res.def.GroupResource, info.verb))
	}
}

// serveDerived serves get, update and patch of a subresource like scale.
func (s *Server) serveDerived(w http.ResponseWriter, r *http.Request, info *requestInfo, sub registry.Subresource) {
	ctx := r.Context()
	res := info.res
	var (
		opts writeOptions
		out  runtime.Object
		err  error
	)
	switch info.verb {
	case "get":
		if opts.target, err = s.negotiate(r); err == nil {
			out, err = res.store.Get(ctx, info.namespace, info.name)
		}
	case "update":
		var subObj runtime.Object
		if opts, err = s.writeOptions(r); err == nil {
			subObj, err = s.decodeRequest(w, r, sub.GroupVersionKind, sub.New, opts.validation)
		}
		if err == nil {
			_, err = checkObjectPath(info, subObj, true)
		}
		if err == nil {
			out, err = s.update(ctx, info, applyDerived(info, sub, opts.manager, func(runtime.Object) (runtime.Object, error) { return subObj, nil }), opts.dryRun)
		}
	case "patch":
		var patch []byte
		var pt string
		var warnings []string
		if opts, patch, pt, err = s.patchRequest(r, false); err == nil {
			patched := func(current runtime.Object) (runtime.Object, error) {
				cur, err := sub.Get(current)
				if err != nil {
					return nil, err
				}
				obj, warns, err := s.patchObject(cur, sub.GroupVersionKind, sub.New, pt, patch, opts.validation)
				warnings = warns
				return obj, err
			}
			out, err = s.update(ctx, info, applyDerived(info, sub, opts.manager, patched), opts.dryRun)
			addWarnings(w, warnings)
		}
	default:
		err = apierrors.NewMethodNotSupported(res.def.GroupResource, info.verb)
	}
	if err == nil {
		out, err = sub.Get(out)
	}
	if err != nil {
		writeStatusError(w, err)
		return
	}
	writeObject(w, http.StatusOK, opts.target, withKind(out, sub.GroupVersionKind))
}

// applyDerived is the mutation of a derived subresource write: its object (made by
// subObj from the current parent) must name the parent's resourceVersion if it names
// one; Apply writes it onto the parent, and the parent's strategy runs as for a PUT.
//
// The change is recorded in managedFields as the manager's update of the parent,
// so a later server-side apply of the same field (spec.replicas for scale) meets
// the conflict it would meet on kube-apiserver.
func applyDerived(info *requestInfo, sub registry.Subresource, manager string, subObj func(current runtime.Object) (runtime.Object, error)) mutation {
	res := info.res
	return func(ctx context.Context, current runtime.Object) (runtime.Object, error) {
		obj, err := subObj(current)
		if err != nil {
			return nil, err
		}
		if err := checkSubPreconditions(info, obj, current); err != nil {
			return nil, err
		}
		parent, err := sub.Apply(ctx, current.DeepCopyObject(), obj)
		if err != nil {
			return nil, err
		}
		parent = recordUpdate(res.fms.main, current, parent, manager)
		strategy := res.def.Strategy
		strategy.PrepareForUpdate(ctx, parent, current)
		strategy.Default(parent)
		if errs := strategy.ValidateUpdate(ctx, parent, current); len(errs) > 0 {
			return nil, apierrors.NewInvalid(sub.GroupVersionKind.GroupKind(), info.name, errs)
		}
		return parent, nil
	}
}

// checkSubPreconditions turns a stale resourceVersion or a different uid in a
// subresource object into 409 Conflict, as for the parent.
func checkSubPreconditions(info *requestInfo, sub, current runtime.Object) error {
	sm, err := meta.Accessor(sub)
	if err != nil {
		// Objects without metadata carry no preconditions.
		return nil
	}
	cm, err := meta.Accessor(current)
	if err != nil {
		return err
	}
	gr := info.res.def.GroupResource
	if rv := sm.GetResourceVersion(); rv != "" && rv != cm.GetResourceVersion() {
		return apierrors.NewConflict(gr, info.name, errors.New(registryConflictMessage))
	}
	if uid := sm.GetUID(); uid != "" && uid != cm.GetUID() {
		return apierrors.NewConflict(gr, info.name,
			fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", uid, cm.GetUID()))
	}
	return nil
}

// registryConflictMessage is kube-apiserver's text for a stale resourceVersion.
const registryConflictMessage = "the object has been modified; please apply your changes to the latest version and try again"

// serveAction serves POST of a subresource like binding; the answer is a Status
// Success with code 201, as kube-apiserver sends for a binding.
func (s *Server) serveAction(w http.ResponseWriter, r *http.Request, info *requestInfo, sub registry.Subresource) {
	opts, err := s.writeOptions(r)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	obj, err := s.decodeRequest(w, r, sub.GroupVersionKind, sub.New, opts.validation)
	if err == nil {
		_, err = checkObjectPath(info, obj, true)
	}
	if err == nil {
		_, err = s.update(r.Context(), info, func(ctx context.Context, current runtime.Object) (runtime.Object, error) {
			if err := checkSubPreconditions(info, obj, current); err != nil {
				return nil, err
			}
			return sub.Apply(ctx, current, obj)
		}, opts.dryRun)
	}
	if err != nil {
		writeStatusError(w, err)
		return
	}
	writeStatus(w, metav1.Status{Status: metav1.StatusSuccess, Code: http.StatusCreated})
}
