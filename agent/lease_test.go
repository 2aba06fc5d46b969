package agent

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2/ktesting"
)

// leaseServer is an apiserver that serves one node Lease and hangs the requests it is
// told to: a slow apiserver, as a heartbeat sees it.
type leaseServer struct {
	mu      sync.Mutex
	lease   *coordinationv1.Lease
	hang    int // the next this many writes hang until the client gives up
	renewed []time.Time
	gets    int
}

func (s *leaseServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases") {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	hang := r.Method != http.MethodGet && s.hang > 0
	if hang {
		s.hang--
	}
	s.mu.Unlock()
	if hang {
		// With the body read, the server notices the client hanging up.
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch r.Method {
	case http.MethodGet:
		s.gets++
		if s.lease == nil {
			st := apierrors.NewNotFound(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, testNode).Status()
			st.Kind, st.APIVersion = "Status", "v1"
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(st)
			return
		}
	case http.MethodPost, http.MethodPut:
		var l coordinationv1.Lease
		if err := json.NewDecoder(r.Body).Decode(&l); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		l.Kind, l.APIVersion = "Lease", "coordination.k8s.io/v1"
		s.lease = &l
		s.renewed = append(s.renewed, l.Spec.RenewTime.Time)
	}
	_ = json.NewEncoder(w).Encode(s.lease)
}

// TestLeaseRenewalOutlivesASlowApiserver: a renewal stuck in the apiserver is given up
// after the renew interval and the next one goes through; between, heartbeats are one
// write each, with no read.
func TestLeaseRenewalOutlivesASlowApiserver(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	srv := &leaseServer{}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	client, err := kubernetes.NewForConfig(&rest.Config{Host: hs.URL, QPS: -1, ContentConfig: rest.ContentConfig{ContentType: "application/json"}})
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{cfg: Config{NodeName: testNode, LeaseClient: client, LeaseDurationSeconds: 2}} // renew every 500ms
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { a.runLease(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	renewals := func() int {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return len(srv.renewed)
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitUntil("three renewals", func() bool { return renewals() >= 3 })
	srv.mu.Lock()
	srv.hang = 1
	base, gets := len(srv.renewed), srv.gets
	srv.mu.Unlock()
	start := time.Now()
	waitUntil("a renewal after the stuck one", func() bool { return renewals() > base })
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the next renewal came %v after a stuck one, want about the 500ms interval plus the retry", took)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.gets != 1 && srv.gets != gets+1 {
		t.Errorf("%d lease reads, want one to create it and at most one after the stuck write", srv.gets)
	}
}
