package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	jsonpatchv5 "github.com/evanphx/json-patch/v5"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// checkPatchType accepts the patch formats skiff applies. Server-side apply needs
// a field manager, which exists only with Config.TypeConverter.
func checkPatchType(pt string, canApply bool) error {
	switch types.PatchType(pt) {
	case types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType:
		return nil
	case types.ApplyYAMLPatchType:
		if canApply {
			return nil
		}
		return newStatusError(http.StatusUnsupportedMediaType, metav1.StatusReasonUnsupportedMediaType,
			"server-side apply is not enabled on this server; use kubectl apply without --server-side")
	case types.ApplyCBORPatchType:
		return newStatusError(http.StatusUnsupportedMediaType, metav1.StatusReasonUnsupportedMediaType,
			"server-side apply in CBOR is not supported; send application/apply-patch+yaml")
	}
	return newStatusError(http.StatusUnsupportedMediaType, metav1.StatusReasonUnsupportedMediaType,
		fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s, %s, %s",
			types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType))
}

func (s *Server) servePatch(w http.ResponseWriter, r *http.Request, info *requestInfo) {
	s.servePatchWith(w, r, info, info.res.def.Strategy)
}

// servePatchWith is PATCH of the resource or of its status: the patch is applied to
// the current object's JSON, and the result replaces the object as a PUT would.
func (s *Server) servePatchWith(w http.ResponseWriter, r *http.Request, info *requestInfo, strategy updateStrategy) {
	res := info.res
	fm := res.fms.forSubresource(info.subresource)
	opts, patch, pt, err := s.patchRequest(r, fm != nil)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	if types.PatchType(pt) == types.ApplyYAMLPatchType {
		s.serveApply(w, r, info, strategy, opts, patch)
		return
	}
	var warnings []string
	mutate := func(ctx context.Context, current runtime.Object) (runtime.Object, error) {
		obj, warns, err := s.patchObject(current, res.gvk(), res.def.NewFunc, pt, patch, opts.validation)
		if err != nil {
			return nil, err
		}
		warnings = warns
		if _, err := checkObjectPath(info, obj, true); err != nil {
			return nil, err
		}
		fm := res.fms.forSubresource(info.subresource)
		return replaceWith(res, strategy, fm, opts.manager, obj)(ctx, current)
	}
	out, err := s.update(r.Context(), info, mutate, opts.dryRun)
	addWarnings(w, warnings)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	writeObject(w, http.StatusOK, opts.target, withKind(out, res.gvk()))
}

// patchRequest reads the options, patch type and body of a PATCH.
func (s *Server) patchRequest(r *http.Request, canApply bool) (writeOptions, []byte, string, error) {
	opts, err := s.writeOptions(r)
	if err != nil {
		return opts, nil, "", err
	}
	pt := patchTypeOf(r.Header.Get("Content-Type"))
	if err := checkPatchType(pt, canApply); err != nil {
		return opts, nil, "", err
	}
	patch, err := readBody(r)
	if err != nil {
		return opts, nil, "", err
	}
	if len(patch) == 0 {
		return opts, nil, "", apierrors.NewBadRequest("the patch is empty")
	}
	return opts, patch, pt, nil
}

// patchObject applies patch to current (of kind gvk) and decodes the result,
// honouring fieldValidation for fields the patch introduced.
func (s *Server) patchObject(current runtime.Object, gvk schema.GroupVersionKind, newFunc func() runtime.Object, pt string, patch []byte, validation string) (runtime.Object, []string, error) {
	original, err := encode(s.serializerFor(mediaTypeJSON), withKind(current, gvk))
	if err != nil {
		return nil, nil, err
	}
	patched, err := applyPatch(pt, original, patch, newFunc())
	if err != nil {
		return nil, nil, err
	}
	dec, err := s.decodeBody(patched, mediaTypeJSON, gvk, newFunc(), validation)
	if err != nil {
		return nil, nil, err
	}
	return dec.obj, dec.warnings, nil
}

// JSON patch limits, kube-apiserver's: a patch may hold at most maxJSONPatchOperations
// operations, and its copy operations may add at most maxCopyGrowth bytes, so that a
// small patch cannot copy a document into gigabytes.
const (
	maxJSONPatchOperations = 10000
	maxCopyGrowth          = 3 * maxBodyBytes
)

// applyJSONPatch applies an RFC 6902 patch within the limits above. It uses json-patch
// v5 for its per-call options: v4 only has a process-wide copy limit.
func applyJSONPatch(original, patch []byte) ([]byte, error) {
	p, err := jsonpatchv5.DecodePatch(patch)
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if len(p) > maxJSONPatchOperations {
		return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf(
			"The allowed maximum operations in a JSON patch is %d, got %d", maxJSONPatchOperations, len(p)))
	}
	opts := jsonpatchv5.NewApplyOptions()
	opts.AccumulatedCopySizeLimit = maxCopyGrowth
	out, err := p.ApplyWithOptions(original, opts)
	var tooLarge *jsonpatchv5.AccumulatedCopySizeError
	if errors.As(err, &tooLarge) {
		return nil, apierrors.NewRequestEntityTooLargeError(err.Error())
	}
	if err != nil {
		return nil, invalidPatch(patch, err)
	}
	return out, nil
}

// invalidPatch is kube-apiserver's 422 on "patch" for a patch that cannot be applied.
func invalidPatch(patch []byte, err error) error {
	return apierrors.NewInvalid(schema.GroupKind{}, "", field.ErrorList{
		field.Invalid(field.NewPath("patch"), string(patch), err.Error()),
	})
}

// applyPatch applies a JSON, merge or strategic merge patch; dataStruct is the Go type
// whose patchStrategy tags drive the strategic merge.
func applyPatch(pt string, original, patch []byte, dataStruct runtime.Object) ([]byte, error) {
	var out []byte
	var err error
	switch types.PatchType(pt) {
	case types.JSONPatchType:
		return applyJSONPatch(original, patch)
	case types.MergePatchType:
		out, err = jsonpatch.MergePatch(original, patch)
	case types.StrategicMergePatchType:
		out, err = strategicpatch.StrategicMergePatch(original, patch, dataStruct)
	default:
		return nil, checkPatchType(pt, false)
	}
	if err != nil {
		return nil, invalidPatch(patch, err)
	}
	return out, nil
}
