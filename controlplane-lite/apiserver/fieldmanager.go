package apiserver

import (
	"fmt"
	"net/http"
	"strings"
	"unicode"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/managedfields"
)

// maxFieldManagerLength is kube-apiserver's limit on a field manager's name.
const maxFieldManagerLength = 128

// fieldManagers record managedFields on writes and merge server-side apply
// configurations for one resource; both are nil without a TypeConverter.
type fieldManagers struct {
	main   *managedfields.FieldManager
	status *managedfields.FieldManager
}

// newFieldManagers builds the field managers of a resource and of its status
// subresource. Objects are served in one version, so the resource's own version is
// the hub and conversions are identities.
func newFieldManagers(tc managedfields.TypeConverter, scheme *runtime.Scheme, res *resource) (fieldManagers, error) {
	if tc == nil {
		return fieldManagers{}, nil
	}
	gvk := res.gvk()
	main, err := managedfields.NewDefaultFieldManager(tc, scheme, res.def.Strategy, scheme, gvk, gvk.GroupVersion(), "", nil)
	if err != nil {
		return fieldManagers{}, fmt.Errorf("field manager of %s: %w", res.gvr, err)
	}
	fms := fieldManagers{main: main}
	if _, ok := res.def.Subresources["status"]; ok {
		fms.status, err = managedfields.NewDefaultFieldManager(tc, scheme, res.def.Strategy, scheme, gvk, gvk.GroupVersion(), "status", nil)
		if err != nil {
			return fieldManagers{}, fmt.Errorf("status field manager of %s: %w", res.gvr, err)
		}
	}
	return fms, nil
}

// forSubresource is the field manager of a write through "" (the resource) or
// "status"; other subresources record no managed fields.
func (f fieldManagers) forSubresource(sub string) *managedfields.FieldManager {
	switch sub {
	case "":
		return f.main
	case "status":
		return f.status
	}
	return nil
}

// fieldManagerName is the fieldManager query parameter or, as kube-apiserver
// derives it, the User-Agent up to its first "/".
func fieldManagerName(r *http.Request) (string, error) {
	name := r.URL.Query().Get("fieldManager")
	if name == "" {
		name, _, _ = strings.Cut(r.UserAgent(), "/")
		if len(name) > maxFieldManagerLength {
			name = name[:maxFieldManagerLength]
		}
		return name, nil
	}
	if len(name) > maxFieldManagerLength {
		return "", apierrors.NewBadRequest(fmt.Sprintf("fieldManager: Too long: may not be longer than %d", maxFieldManagerLength))
	}
	for _, c := range name {
		if !unicode.IsPrint(c) {
			return "", apierrors.NewBadRequest("fieldManager: Invalid value: must only contain printable characters")
		}
	}
	return name, nil
}

// recordUpdate adds or refreshes manager's managedFields entry for the change from
// live to obj; without a field manager obj is returned as it is.
func recordUpdate(fm *managedfields.FieldManager, live, obj runtime.Object, manager string) runtime.Object {
	if fm == nil || manager == "" {
		return obj
	}
	return fm.UpdateNoErrors(live, obj, manager)
}
