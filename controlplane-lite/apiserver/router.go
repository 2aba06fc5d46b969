package apiserver

import (
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// requestInfo is what the URL of a resource request names.
type requestInfo struct {
	verb        string
	gv          schema.GroupVersion
	namespace   string
	resource    string
	name        string
	subresource string
	res         *resource
}

// route dispatches by path: health, version, OpenAPI, discovery and the REST paths.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case isHealthPath(p):
		s.serveHealth(w, r, p)
	case p == "/version":
		s.serveVersion(w, r)
	case p == "/openapi/v2" || strings.HasPrefix(p, "/openapi/v3"):
		if s.cfg.OpenAPI == nil {
			writeStatusError(w, notFoundPath())
			return
		}
		s.cfg.OpenAPI.ServeHTTP(w, r)
	case isReviewPath(p):
		gvk, _ := reviewKind(p)
		s.serveReview(w, r, gvk)
	case p == "/api":
		s.serveDiscoveryRoot(w, r, true)
	case p == "/apis":
		s.serveDiscoveryRoot(w, r, false)
	case strings.HasPrefix(p, "/api/"):
		s.serveGroupPath(w, r, "", strings.Split(strings.TrimPrefix(p, "/api/"), "/"))
	case strings.HasPrefix(p, "/apis/"):
		parts := strings.Split(strings.TrimPrefix(p, "/apis/"), "/")
		if len(parts) == 1 {
			s.serveAPIGroup(w, r, parts[0])
			return
		}
		s.serveGroupPath(w, r, parts[0], parts[1:])
	default:
		writeStatusError(w, notFoundPath())
	}
}

func isReviewPath(p string) bool {
	_, ok := reviewKind(p)
	return ok
}

// isHealthPath matches /healthz, /livez, /readyz and their named checks
// (e.g. /readyz/etcd).
func isHealthPath(p string) bool {
	for _, prefix := range []string{"/healthz", "/livez", "/readyz"} {
		if p == prefix || strings.HasPrefix(p, prefix+"/") {
			return true
		}
	}
	return false
}

// serveGroupPath serves /api/<version>/... (group "") and /apis/<group>/<version>/...;
// parts starts with the version.
func (s *Server) serveGroupPath(w http.ResponseWriter, r *http.Request, group string, parts []string) {
	gv := schema.GroupVersion{Group: group, Version: parts[0]}
	if !s.catalog.hasGroupVersion(gv) {
		writeStatusError(w, notFoundPath())
		return
	}
	if len(parts) == 1 {
		if r.Method != http.MethodGet {
			writeStatusError(w, apierrors.NewMethodNotSupported(schema.GroupResource{Group: group}, r.Method))
			return
		}
		s.serveResourceList(w, r, gv)
		return
	}
	if s.serveNodeProxy(w, r, gv, parts[1:]) {
		return
	}
	info, err := s.parseResourcePath(r, gv, parts[1:])
	if err != nil {
		writeStatusError(w, err)
		return
	}
	s.serveResource(w, r, info)
}

// parseResourcePath reads {resource}[/{name}[/{sub}]] or
// namespaces/{ns}/{resource}[/{name}[/{sub}]] and the verb the method means.
func (s *Server) parseResourcePath(r *http.Request, gv schema.GroupVersion, parts []string) (*requestInfo, error) {
	info := &requestInfo{gv: gv}
	// namespaces/{ns}/status and namespaces/{ns}/finalize are subresources of the
	// namespace, not resources inside it.
	if parts[0] == "namespaces" && len(parts) >= 3 && parts[2] != "status" && parts[2] != "finalize" {
		info.namespace = parts[1]
		parts = parts[2:]
		if info.namespace == "" {
			// namespaces//pods names no namespace; it is not a list across all of them.
			return nil, notFoundPath()
		}
	}
	if len(parts) > 3 {
		return nil, notFoundPath()
	}
	info.resource = parts[0]
	if len(parts) > 1 {
		info.name = parts[1]
	}
	if len(parts) > 2 {
		info.subresource = parts[2]
	}
	info.res = s.catalog.lookup(gv, info.resource)
	if info.res == nil || info.name == "" && len(parts) > 1 {
		return nil, notFoundPath()
	}
	namespaced := info.res.def.Namespaced
	if !namespaced && info.namespace != "" {
		return nil, notFoundPath()
	}
	info.verb = verbFor(r, info.name)
	// A namespaced resource without a namespace in the path only lists and watches
	// across all namespaces.
	if namespaced && info.namespace == "" && (info.name != "" || info.verb != "list" && info.verb != "watch") {
		return nil, notFoundPath()
	}
	return info, nil
}

// verbFor maps the method to kube's verb names.
func verbFor(r *http.Request, name string) string {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if name != "" {
			return "get"
		}
		if w := r.URL.Query().Get("watch"); w == "true" || w == "1" {
			return "watch"
		}
		return "list"
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		if name == "" {
			return "deletecollection"
		}
		return "delete"
	}
	return strings.ToLower(r.Method)
}

// serveResource checks the verb against the Definition and runs its handler.
func (s *Server) serveResource(w http.ResponseWriter, r *http.Request, info *requestInfo) {
	gr := info.res.def.GroupResource
	if info.subresource != "" {
		s.serveSubresource(w, r, info)
		return
	}
	if !info.res.allows(info.verb) || info.verb == "create" && info.name != "" {
		writeStatusError(w, apierrors.NewMethodNotSupported(gr, info.verb))
		return
	}
	switch info.verb {
	case "get":
		s.serveGet(w, r, info)
	case "list":
		s.serveList(w, r, info)
	case "watch":
		s.serveWatch(w, r, info)
	case "create":
		s.serveCreate(w, r, info)
	case "update":
		s.serveUpdate(w, r, info)
	case "patch":
		s.servePatch(w, r, info)
	case "delete":
		s.serveDelete(w, r, info)
	case "deletecollection":
		s.serveDeleteCollection(w, r, info)
	default:
		writeStatusError(w, apierrors.NewMethodNotSupported(gr, info.verb))
	}
}
