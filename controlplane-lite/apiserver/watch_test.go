package apiserver

import (
	"bufio"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// watchStream opens a watch and returns a function reading its next event.
func (s *testServer) watchStream(t *testing.T, path string, headers ...string) (*http.Response, func() (metav1.WatchEvent, bool)) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	lines := make(chan []byte)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			select {
			case lines <- append([]byte(nil), sc.Bytes()...):
			case <-t.Context().Done():
				return
			}
		}
	}()
	next := func() (metav1.WatchEvent, bool) {
		t.Helper()
		select {
		case line, ok := <-lines:
			if !ok {
				return metav1.WatchEvent{}, false
			}
			var ev metav1.WatchEvent
			if err := json.Unmarshal(line, &ev); err != nil {
				t.Fatalf("watch line %q: %v", line, err)
			}
			return ev, true
		case <-time.After(10 * time.Second):
			t.Fatal("no watch event within 10s")
		}
		return metav1.WatchEvent{}, false
	}
	return resp, next
}

func TestWatchStreamsEvents(t *testing.T) {
	s := newTestServer(t)
	createRS(t, s, "before")
	resp, next := s.watchStream(t, rsPath+"?watch=true&timeoutSeconds=30")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("watch answer %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("Transfer-Encoding = %v", resp.TransferEncoding)
	}
	expectEvent := func(typ, name string) appsv1.ReplicaSet {
		t.Helper()
		ev, ok := next()
		if !ok {
			t.Fatalf("watch ended, want %s %s", typ, name)
		}
		var rs appsv1.ReplicaSet
		if err := json.Unmarshal(ev.Object.Raw, &rs); err != nil {
			t.Fatal(err)
		}
		if ev.Type != typ || rs.Name != name || rs.Kind != "ReplicaSet" || rs.APIVersion != "apps/v1" {
			t.Fatalf("event %s %s/%s %s, want %s %s", ev.Type, rs.APIVersion, rs.Kind, rs.Name, typ, name)
		}
		return rs
	}
	expectEvent("ADDED", "before")
	createRS(t, s, "during")
	expectEvent("ADDED", "during")
	s.do(t, http.MethodPatch, rsPath+"/during", `{"spec":{"replicas":0}}`, "Content-Type", "application/merge-patch+json")
	if rs := expectEvent("MODIFIED", "during"); *rs.Spec.Replicas != 0 {
		t.Errorf("modified replicas = %d", *rs.Spec.Replicas)
	}
	expectCode(t, s.do(t, http.MethodDelete, rsPath+"/during", ""), http.StatusOK)
	expectEvent("DELETED", "during")
}

func TestWatchEndsAtTimeoutAndFilters(t *testing.T) {
	s := newTestServer(t)
	rs := createRS(t, s, "a")
	// From a resourceVersion: only later changes, and only those the selector matches.
	_, next := s.watchStream(t, rsPath+"?watch=1&timeoutSeconds=3&labelSelector=app%3Dmy-app&resourceVersion="+rs.ResourceVersion)
	other := `{"apiVersion":"apps/v1","kind":"ReplicaSet","metadata":{"name":"other","labels":{"app":"x"}},"spec":{"selector":{"matchLabels":{"app":"x"}},"template":{"metadata":{"labels":{"app":"x"}}}}}`
	expectCode(t, s.do(t, http.MethodPost, rsPath, other), http.StatusCreated)
	createRS(t, s, "b")
	ev, ok := next()
	if !ok || ev.Type != "ADDED" {
		t.Fatalf("first event %v %v", ev.Type, ok)
	}
	var got appsv1.ReplicaSet
	if err := json.Unmarshal(ev.Object.Raw, &got); err != nil || got.Name != "b" {
		t.Fatalf("event for %q (%v), want b", got.Name, err)
	}
	start := time.Now()
	if ev, ok := next(); ok {
		t.Fatalf("unexpected event %s", ev.Type)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("watch lasted %v past its timeout", d)
	}
}

func TestWatchOfTables(t *testing.T) {
	s := newTestServer(t)
	createRS(t, s, "a")
	createRS(t, s, "b")
	_, next := s.watchStream(t, rsPath+"?watch=true&timeoutSeconds=10",
		"Accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")
	for i := range 2 {
		ev, ok := next()
		if !ok {
			t.Fatal("watch ended")
		}
		var table metav1.Table
		if err := json.Unmarshal(ev.Object.Raw, &table); err != nil {
			t.Fatal(err)
		}
		if table.Kind != "Table" || table.APIVersion != "meta.k8s.io/v1" || len(table.Rows) != 1 {
			t.Fatalf("event %d: %s", i, ev.Object.Raw)
		}
		// Column definitions come with the first event only.
		if (i == 0) != (len(table.ColumnDefinitions) > 0) {
			t.Errorf("event %d has %d column definitions", i, len(table.ColumnDefinitions))
		}
		var partial metav1.PartialObjectMetadata
		if err := json.Unmarshal(table.Rows[0].Object.Raw, &partial); err != nil || partial.Kind != "PartialObjectMetadata" || partial.Name == "" {
			t.Errorf("row object %s (%v)", table.Rows[0].Object.Raw, err)
		}
	}
}
