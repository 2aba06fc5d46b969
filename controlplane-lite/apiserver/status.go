package apiserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// errorStatus turns any error into the Status kube-apiserver would send: API errors
// keep their code and reason, anything else is a 500 InternalError.
func errorStatus(err error) metav1.Status {
	var apiStatus apierrors.APIStatus
	if !errors.As(err, &apiStatus) {
		apiStatus = apierrors.NewInternalError(err)
	}
	st := apiStatus.Status()
	if st.Code == 0 {
		st.Code = http.StatusInternalServerError
	}
	if st.Status == "" {
		st.Status = metav1.StatusFailure
	}
	return st
}

// writeStatusError answers with err as a metav1.Status in JSON. Errors are always
// JSON: every client decodes that whatever it asked for.
func writeStatusError(w http.ResponseWriter, err error) {
	writeStatus(w, errorStatus(err))
}

func writeStatus(w http.ResponseWriter, st metav1.Status) {
	st.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	writeJSON(w, int(st.Code), "application/json", st)
}

// writeJSON answers with v encoded by encoding/json; for documents that are not
// runtime.Objects of the scheme (discovery, version, Status).
func writeJSON(w http.ResponseWriter, code int, contentType string, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		body = []byte(fmt.Sprintf(`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":%q,"reason":"InternalError","code":500}`, err.Error()))
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// newStatusError builds an error with a given code and reason for the cases the
// apierrors constructors do not cover (406, 415).
func newStatusError(code int32, reason metav1.StatusReason, msg string) *apierrors.StatusError {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status:  metav1.StatusFailure,
		Code:    code,
		Reason:  reason,
		Message: msg,
	}}
}

// notFoundPath is kube-apiserver's answer for a path no handler serves.
func notFoundPath() *apierrors.StatusError {
	return newStatusError(http.StatusNotFound, metav1.StatusReasonNotFound, "the server could not find the requested resource")
}
