package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"
)

// serveApply is server-side apply (PATCH application/apply-patch+yaml): the field
// manager merges the applied configuration into the live object, failing with 409
// on fields another manager owns unless force=true; a missing object is created.
func (s *Server) serveApply(w http.ResponseWriter, r *http.Request, info *requestInfo, strategy updateStrategy, opts writeOptions, patch []byte) {
	res := info.res
	fm := res.fms.forSubresource(info.subresource)
	applied, force, err := s.applyRequest(r, info, patch)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	mutate := func(ctx context.Context, current runtime.Object) (runtime.Object, error) {
		obj, err := fm.Apply(current, applied.DeepCopy(), opts.manager, force)
		if err != nil {
			return nil, applyError(err)
		}
		if _, err := checkObjectPath(info, obj, true); err != nil {
			return nil, err
		}
		return replaceWith(res, strategy, nil, "", obj)(ctx, current)
	}
	out, err := s.update(r.Context(), info, mutate, opts.dryRun)
	code := http.StatusOK
	if apierrors.IsNotFound(err) && info.subresource == "" {
		code = http.StatusCreated
		out, err = s.applyCreate(r.Context(), info, applied, opts, force)
	}
	if err != nil {
		writeStatusError(w, err)
		return
	}
	writeObject(w, code, opts.target, withKind(out, res.gvk()))
}

// applyRequest checks the parameters and decodes the applied configuration.
func (s *Server) applyRequest(r *http.Request, info *requestInfo, patch []byte) (*unstructured.Unstructured, bool, error) {
	q := r.URL.Query()
	if q.Get("fieldManager") == "" {
		return nil, false, apierrors.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: "PatchOptions"}, "",
			field.ErrorList{field.Required(field.NewPath("fieldManager"), "is required for apply patch")})
	}
	force := false
	if v := q.Get("force"); v != "" {
		var err error
		if force, err = strconv.ParseBool(v); err != nil {
			return nil, false, apierrors.NewBadRequest(fmt.Sprintf("force: invalid value %q", v))
		}
	}
	applied := &unstructured.Unstructured{Object: map[string]any{}}
	if err := yaml.Unmarshal(patch, &applied.Object); err != nil {
		return nil, false, apierrors.NewBadRequest(fmt.Sprintf("error decoding YAML: %v", err))
	}
	if gvk := applied.GroupVersionKind(); gvk != info.res.gvk() {
		return nil, false, apierrors.NewBadRequest(fmt.Sprintf("the applied configuration is %s, but %s was expected", gvk, info.res.gvk()))
	}
	if name := applied.GetName(); name != info.name {
		return nil, false, apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", name, info.name))
	}
	return applied, force, nil
}

// applyCreate creates the object an apply names when it does not exist yet.
func (s *Server) applyCreate(ctx context.Context, info *requestInfo, applied *unstructured.Unstructured, opts writeOptions, force bool) (runtime.Object, error) {
	res := info.res
	empty := res.def.NewFunc()
	m, err := meta.Accessor(empty)
	if err != nil {
		return nil, err
	}
	m.SetName(info.name)
	m.SetNamespace(info.namespace)
	obj, err := res.fms.main.Apply(empty, applied, opts.manager, force)
	if err != nil {
		return nil, applyError(err)
	}
	if _, err := checkObjectPath(info, obj, true); err != nil {
		return nil, err
	}
	if err := s.admitNamespace(ctx, info); err != nil {
		return nil, err
	}
	opts.manager = "" // Apply recorded the manager already.
	return s.create(ctx, res, obj, opts)
}

// applyError keeps API errors (409 conflicts with their causes) and turns the rest,
// mostly configurations the schema rejects, into 400.
func applyError(err error) error {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return err
	}
	return apierrors.NewBadRequest(err.Error())
}
