package apiserver

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// copyBombPatch doubles /a n times: a 1 KB patch that would grow a document to gigabytes.
func copyBombPatch(n int) string {
	ops := []string{`{"op":"add","path":"/a","value":{"x":"` + strings.Repeat("x", 512) + `"}}`}
	for i := range n {
		ops = append(ops, fmt.Sprintf(`{"op":"copy","from":"/a","path":"/a/c%d"}`, i))
	}
	return "[" + strings.Join(ops, ",") + "]"
}

func TestJSONPatchCopyGrowthIsBounded(t *testing.T) {
	_, err := applyJSONPatch([]byte(`{}`), []byte(copyBombPatch(30)))
	if !apierrors.IsRequestEntityTooLargeError(err) {
		t.Fatalf("copy bomb: %v, want 413 Request Entity Too Large", err)
	}
	// A few copies stay well within the limit.
	out, err := applyJSONPatch([]byte(`{}`), []byte(copyBombPatch(3)))
	if err != nil || len(out) < 8*512 {
		t.Fatalf("small copy patch: %d bytes, %v", len(out), err)
	}
}

func TestJSONPatchOperationCountIsBounded(t *testing.T) {
	ops := make([]string, maxJSONPatchOperations+1)
	for i := range ops {
		ops[i] = `{"op":"test","path":"/a","value":1}`
	}
	_, err := applyJSONPatch([]byte(`{"a":1}`), []byte("["+strings.Join(ops, ",")+"]"))
	if status, ok := err.(apierrors.APIStatus); !ok || status.Status().Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("%d operations: %v, want 413", len(ops), err)
	}
	if _, err := applyJSONPatch([]byte(`{"a":1}`), []byte("["+strings.Join(ops[:10], ",")+"]")); err != nil {
		t.Fatalf("10 operations: %v", err)
	}
}
