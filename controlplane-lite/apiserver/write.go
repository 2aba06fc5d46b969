package apiserver

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

const (
	// maxBodyBytes is kube-apiserver's limit for a request body (3 MiB).
	maxBodyBytes = 3 << 20
	// generateNameTries bounds the retries of a generated name that already exists,
	// as kube-apiserver does.
	generateNameTries = 8
	// randomSuffixLength and maxNameLength follow kube's SimpleNameGenerator.
	randomSuffixLength = 5
	maxNameLength      = 63
)

// namespacesGR names the namespaces resource, which the namespace checks read.
func namespacesGR() schema.GroupResource { return schema.GroupResource{Resource: "namespaces"} }

// writeOptions are the query parameters common to create, update and patch.
type writeOptions struct {
	target     outputTarget
	validation string
	dryRun     bool
	// manager names the writer in managedFields.
	manager string
}

func (s *Server) writeOptions(r *http.Request) (writeOptions, error) {
	var opts writeOptions
	var err error
	if opts.target, err = s.negotiate(r); err != nil {
		return opts, err
	}
	if opts.validation, err = fieldValidation(r); err != nil {
		return opts, err
	}
	if opts.manager, err = fieldManagerName(r); err != nil {
		return opts, err
	}
	opts.dryRun, err = dryRun(r.URL.Query()["dryRun"])
	return opts, err
}

func dryRun(values []string) (bool, error) {
	for _, v := range values {
		if v != metav1.DryRunAll {
			return false, apierrors.NewBadRequest(fmt.Sprintf("dryRun: unsupported value %q, only %q is supported", v, metav1.DryRunAll))
		}
	}
	return len(values) > 0, nil
}

func readBody(r *http.Request) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("read request body: %v", err))
	}
	if len(data) > maxBodyBytes {
		return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d bytes", maxBodyBytes))
	}
	return data, nil
}

// decodeRequest reads and decodes the body as an object of gvk made by newFunc.
func (s *Server) decodeRequest(w http.ResponseWriter, r *http.Request, gvk schema.GroupVersionKind, newFunc func() runtime.Object, validation string) (runtime.Object, error) {
	data, err := readBody(r)
	if err != nil {
		return nil, err
	}
	if len(data) == 0 {
		return nil, apierrors.NewBadRequest("the request body is empty")
	}
	dec, err := s.decodeBody(data, r.Header.Get("Content-Type"), gvk, newFunc(), validation)
	if err != nil {
		return nil, err
	}
	addWarnings(w, dec.warnings)
	return dec.obj, nil
}

// checkObjectPath makes the object's name and namespace agree with the URL: empty
// ones are taken from the URL, different ones are a bad request.
func checkObjectPath(info *requestInfo, obj runtime.Object, checkName bool) (metav1.Object, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the object has no metadata: %v", err))
	}
	if checkName && m.GetName() != info.name {
		if m.GetName() != "" {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", m.GetName(), info.name))
		}
		m.SetName(info.name)
	}
	if !info.res.def.Namespaced {
		m.SetNamespace("")
		return m, nil
	}
	switch m.GetNamespace() {
	case "":
		m.SetNamespace(info.namespace)
	case info.namespace:
	default:
		return nil, apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	return m, nil
}

func (s *Server) serveCreate(w http.ResponseWriter, r *http.Request, info *requestInfo) {
	ctx := r.Context()
	opts, err := s.writeOptions(r)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	obj, err := s.decodeRequest(w, r, info.res.gvk(), info.res.def.NewFunc, opts.validation)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	if _, err := checkObjectPath(info, obj, false); err != nil {
		writeStatusError(w, err)
		return
	}
	if err := s.admitNamespace(ctx, info); err != nil {
		writeStatusError(w, err)
		return
	}
	out, err := s.create(ctx, info.res, obj, opts)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	writeObject(w, http.StatusCreated, opts.target, withKind(out, info.res.gvk()))
}

// admitNamespace is kube's NamespaceLifecycle admission: objects are created only in
// namespaces that exist and are not being deleted.
func (s *Server) admitNamespace(ctx context.Context, info *requestInfo) error {
	nsRes := s.catalog.byGR[namespacesGR()]
	if !info.res.def.Namespaced || nsRes == nil {
		return nil
	}
	ns, err := nsRes.store.Get(ctx, "", info.namespace)
	if apierrors.IsNotFound(err) {
		return apierrors.NewNotFound(namespacesGR(), info.namespace)
	}
	if err != nil {
		return err
	}
	if m, err := meta.Accessor(ns); err == nil && m.GetDeletionTimestamp() != nil {
		return apierrors.NewForbidden(info.res.def.GroupResource, "",
			fmt.Errorf("unable to create new content in namespace %s because it is being terminated", info.namespace))
	}
	return nil
}

// create fills the system fields, runs the strategy and stores obj, retrying a
// generated name that is taken.
func (s *Server) create(ctx context.Context, res *resource, obj runtime.Object, opts writeOptions) (runtime.Object, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if m.GetResourceVersion() != "" {
		return nil, apierrors.NewBadRequest("resourceVersion should not be set on objects to be created")
	}
	m.SetUID(uuid.NewUUID())
	m.SetCreationTimestamp(metav1.NewTime(time.Now().Truncate(time.Second)))
	m.SetDeletionTimestamp(nil)
	m.SetDeletionGracePeriodSeconds(nil)
	res.def.Strategy.PrepareForCreate(ctx, obj)
	res.def.Strategy.Default(obj)
	obj = recordUpdate(res.fms.main, res.def.NewFunc(), obj, opts.manager)
	if m, err = meta.Accessor(obj); err != nil {
		return nil, err
	}
	generated := m.GetName() == "" && m.GetGenerateName() != ""
	if generated {
		m.SetName(generateName(m.GetGenerateName()))
	}
	if m.GetName() == "" {
		return nil, apierrors.NewInvalid(res.gvk().GroupKind(), "", field.ErrorList{
			field.Required(field.NewPath("metadata", "name"), "name or generateName is required"),
		})
	}
	if errs := res.def.Strategy.Validate(ctx, obj); len(errs) > 0 {
		return nil, apierrors.NewInvalid(res.gvk().GroupKind(), m.GetName(), errs)
	}
	if opts.dryRun {
		return obj, nil
	}
	for try := 1; ; try++ {
		out, err := res.store.Create(ctx, obj)
		if !generated || !apierrors.IsAlreadyExists(err) || try == generateNameTries {
			return out, err
		}
		m.SetName(generateName(m.GetGenerateName()))
	}
}

// generateName appends five random characters of kube's alphabet to base.
func generateName(base string) string {
	if len(base) > maxNameLength-randomSuffixLength {
		base = base[:maxNameLength-randomSuffixLength]
	}
	return base + utilrand.String(randomSuffixLength)
}

// updateStrategy is the part of a strategy an update runs: the resource's own or a
// status subresource's.
type updateStrategy interface {
	PrepareForUpdate(ctx context.Context, obj, old runtime.Object)
	ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList
}

// mutation computes the object to store from a private copy of the current one.
type mutation func(ctx context.Context, current runtime.Object) (runtime.Object, error)

// update applies mutate to the stored object with optimistic concurrency, then
// removes the object if it was being deleted and nothing holds it any more.
func (s *Server) update(ctx context.Context, info *requestInfo, mutate mutation, dryRun bool) (runtime.Object, error) {
	res := info.res
	if dryRun {
		current, err := res.store.Get(ctx, info.namespace, info.name)
		if err != nil {
			return nil, err
		}
		return mutate(ctx, current.DeepCopyObject())
	}
	out, err := res.store.GuaranteedUpdate(ctx, info.namespace, info.name, func(current runtime.Object) (runtime.Object, error) {
		return mutate(ctx, current)
	})
	if err != nil {
		return nil, err
	}
	out, _, err = s.finishDeletion(ctx, res, out)
	return out, err
}

// replaceWith is the mutation of a PUT (or of a patched object): newObj replaces the
// current object, keeping the metadata a client cannot change, then the strategy
// prepares, defaults and validates it.
func replaceWith(res *resource, strategy updateStrategy, fm *managedfields.FieldManager, manager string, newObj runtime.Object) mutation {
	return func(ctx context.Context, current runtime.Object) (runtime.Object, error) {
		obj := newObj.DeepCopyObject()
		if err := keepSystemMetadata(res, obj, current); err != nil {
			return nil, err
		}
		obj = recordUpdate(fm, current, obj, manager)
		strategy.PrepareForUpdate(ctx, obj, current)
		res.def.Strategy.Default(obj)
		if errs := strategy.ValidateUpdate(ctx, obj, current); len(errs) > 0 {
			m, _ := meta.Accessor(obj)
			return nil, apierrors.NewInvalid(res.gvk().GroupKind(), m.GetName(), errs)
		}
		return obj, nil
	}
}

// keepSystemMetadata copies uid, creationTimestamp and the deletion fields from old;
// an empty resourceVersion means an unconditional update.
func keepSystemMetadata(res *resource, obj, old runtime.Object) error {
	nm, err := meta.Accessor(obj)
	if err != nil {
		return apierrors.NewBadRequest(err.Error())
	}
	om, err := meta.Accessor(old)
	if err != nil {
		return err
	}
	if uid := nm.GetUID(); uid != "" && uid != om.GetUID() {
		return apierrors.NewConflict(res.def.GroupResource, om.GetName(),
			fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", uid, om.GetUID()))
	}
	nm.SetUID(om.GetUID())
	nm.SetCreationTimestamp(om.GetCreationTimestamp())
	nm.SetDeletionTimestamp(om.GetDeletionTimestamp())
	nm.SetDeletionGracePeriodSeconds(om.GetDeletionGracePeriodSeconds())
	if nm.GetResourceVersion() == "" {
		nm.SetResourceVersion(om.GetResourceVersion())
	}
	// generation is the server's: the strategy bumps it when the spec changes.
	nm.SetGeneration(om.GetGeneration())
	return nil
}

func (s *Server) serveUpdate(w http.ResponseWriter, r *http.Request, info *requestInfo) {
	s.serveReplace(w, r, info, info.res.def.Strategy)
}

// serveReplace is PUT of the resource or of its status.
func (s *Server) serveReplace(w http.ResponseWriter, r *http.Request, info *requestInfo, strategy updateStrategy) {
	opts, err := s.writeOptions(r)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	obj, err := s.decodeRequest(w, r, info.res.gvk(), info.res.def.NewFunc, opts.validation)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	if _, err := checkObjectPath(info, obj, true); err != nil {
		writeStatusError(w, err)
		return
	}
	fm := info.res.fms.forSubresource(info.subresource)
	out, err := s.update(r.Context(), info, replaceWith(info.res, strategy, fm, opts.manager, obj), opts.dryRun)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	writeObject(w, http.StatusOK, opts.target, withKind(out, info.res.gvk()))
}

// finishDeletion removes obj when it is marked for deletion, has no finalizers left
// and no grace period to wait for. It reports whether obj is gone.
func (s *Server) finishDeletion(ctx context.Context, res *resource, obj runtime.Object) (runtime.Object, bool, error) {
	m, err := meta.Accessor(obj)
	if err != nil || m.GetDeletionTimestamp() == nil || len(m.GetFinalizers()) > 0 {
		return obj, false, nil
	}
	if fs, ok := res.def.Strategy.(finalizingStrategy); ok && fs.Finalizing(obj) {
		return obj, false, nil
	}
	if g := m.GetDeletionGracePeriodSeconds(); g != nil && *g > 0 {
		return obj, false, nil
	}
	uid, rv := m.GetUID(), m.GetResourceVersion()
	out, err := res.store.Delete(ctx, m.GetNamespace(), m.GetName(), &metav1.Preconditions{UID: &uid, ResourceVersion: &rv}, nil)
	switch {
	case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
		// Someone else removed or changed it meanwhile; their request finishes the job.
		return obj, false, nil
	case err != nil:
		return nil, false, err
	}
	return out, true, nil
}

// patchTypeOf is the media type of a Content-Type, without parameters.
func patchTypeOf(contentType string) string {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.TrimSpace(strings.ToLower(mt))
}
