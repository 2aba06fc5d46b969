package apiserver

import (
	"net/http"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// allowAllReason explains every authorization answer: skiff has no RBAC, and
// every authenticated user may do everything.
const allowAllReason = "skiff authorizes every authenticated user"

// authenticatedGroup is the group kube-apiserver adds to every authenticated user.
const authenticatedGroup = "system:authenticated"

// reviewKind names the kind of the create-only review APIs kubectl auth can-i and
// kubectl auth whoami post to; they answer from the request's user and store
// nothing. ok is false for other paths.
func reviewKind(path string) (gvk schema.GroupVersionKind, ok bool) {
	switch path {
	case "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews":
		return authorizationv1.SchemeGroupVersion.WithKind("SelfSubjectAccessReview"), true
	case "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews":
		return authorizationv1.SchemeGroupVersion.WithKind("SelfSubjectRulesReview"), true
	case "/apis/authentication.k8s.io/v1/selfsubjectreviews":
		return authenticationv1.SchemeGroupVersion.WithKind("SelfSubjectReview"), true
	}
	return schema.GroupVersionKind{}, false
}

func (s *Server) serveReview(w http.ResponseWriter, r *http.Request, gvk schema.GroupVersionKind) {
	gr := schema.GroupResource{Group: gvk.Group, Resource: r.URL.Path}
	if r.Method != http.MethodPost {
		writeStatusError(w, apierrors.NewMethodNotSupported(gr, r.Method))
		return
	}
	opts, err := s.writeOptions(r)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	newObj := func() runtime.Object {
		obj, _ := s.scheme.New(gvk)
		return obj
	}
	obj, err := s.decodeRequest(w, r, gvk, newObj, opts.validation)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	user, _ := userFrom(r.Context())
	switch review := obj.(type) {
	case *authorizationv1.SelfSubjectAccessReview:
		review.Status = authorizationv1.SubjectAccessReviewStatus{Allowed: true, Reason: allowAllReason}
	case *authorizationv1.SelfSubjectRulesReview:
		review.Status = authorizationv1.SubjectRulesReviewStatus{
			ResourceRules:    []authorizationv1.ResourceRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}}},
			NonResourceRules: []authorizationv1.NonResourceRule{{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}},
		}
	case *authenticationv1.SelfSubjectReview:
		review.Status.UserInfo = authenticationv1.UserInfo{Username: user.Name, Groups: user.Groups}
	}
	writeObject(w, http.StatusCreated, opts.target, withKind(obj, gvk))
}
