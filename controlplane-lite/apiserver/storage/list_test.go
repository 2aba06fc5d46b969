package storage

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
)

func names(t *testing.T, list *corev1.PodList) []string {
	t.Helper()
	var out []string
	for _, p := range list.Items {
		out = append(out, p.Namespace+"/"+p.Name)
	}
	return out
}

func mustList(t *testing.T, s Store, namespace string, opts ListOptions) *corev1.PodList {
	t.Helper()
	obj, err := s.List(context.Background(), namespace, opts)
	if err != nil {
		t.Fatalf("list %q %+v: %v", namespace, opts, err)
	}
	return obj.(*corev1.PodList)
}

func TestListFromEtcd(t *testing.T) {
	s, client := testStore(t, defaultOptions())
	for i := range 5 {
		mustCreate(t, s, newPod("a", fmt.Sprintf("p%d", i), "", map[string]string{"even": strconv.FormatBool(i%2 == 0)}))
	}
	mustCreate(t, s, newPod("b", "p0", "", nil))
	// A key sharing the prefix's text but not its path must not show up.
	if _, err := client.Put(context.Background(), "/registry/podsecurity/x", "junk"); err != nil {
		t.Fatal(err)
	}

	all := mustList(t, s, "", ListOptions{})
	if got := names(t, all); len(got) != 6 || got[0] != "a/p0" || got[5] != "b/p0" {
		t.Fatalf("list all = %v", got)
	}
	if all.Kind != "PodList" || all.APIVersion != "v1" {
		t.Errorf("list TypeMeta %+v", all.TypeMeta)
	}
	if all.Items[0].Kind != "" {
		t.Errorf("list items carry kind %q; kube-apiserver's do not", all.Items[0].Kind)
	}
	head, _ := client.Get(context.Background(), "/registry/pods/")
	if all.ResourceVersion != strconv.FormatInt(head.Header.Revision, 10) {
		t.Errorf("list rv %s, want etcd's revision %d", all.ResourceVersion, head.Header.Revision)
	}

	// Paging through namespace a, two at a time, pinned to the first page's revision.
	page := mustList(t, s, "a", ListOptions{Limit: 2})
	firstRV := page.ResourceVersion
	if page.RemainingItemCount == nil || *page.RemainingItemCount != 3 {
		t.Errorf("remainingItemCount = %v, want 3", page.RemainingItemCount)
	}
	mustCreate(t, s, newPod("a", "p9", "", nil)) // after the first page: not in this list
	var got []string
	got = append(got, names(t, page)...)
	for page.Continue != "" {
		page = mustList(t, s, "a", ListOptions{Limit: 2, Continue: page.Continue})
		if page.ResourceVersion != firstRV {
			t.Errorf("page at rv %s, want the first page's %s", page.ResourceVersion, firstRV)
		}
		got = append(got, names(t, page)...)
	}
	if fmt.Sprint(got) != "[a/p0 a/p1 a/p2 a/p3 a/p4]" {
		t.Errorf("paged list = %v", got)
	}

	// A selector with a limit still fills pages.
	sel := labels.SelectorFromSet(labels.Set{"even": "true"})
	page = mustList(t, s, "a", ListOptions{LabelSelector: sel, Limit: 2})
	if fmt.Sprint(names(t, page)) != "[a/p0 a/p2]" || page.Continue == "" {
		t.Errorf("selector page = %v continue %q", names(t, page), page.Continue)
	}
	page = mustList(t, s, "a", ListOptions{LabelSelector: sel, Limit: 2, Continue: page.Continue})
	if fmt.Sprint(names(t, page)) != "[a/p4]" || page.Continue != "" {
		t.Errorf("selector second page = %v continue %q", names(t, page), page.Continue)
	}

	// An exact resourceVersion reads the past.
	old := mustList(t, s, "a", ListOptions{ResourceVersion: firstRV, ResourceVersionMatch: metav1.ResourceVersionMatchExact})
	if len(old.Items) != 5 {
		t.Errorf("exact list at %s has %d items, want 5", firstRV, len(old.Items))
	}
	if _, err := s.List(context.Background(), "a", ListOptions{Continue: "garbage"}); !apierrors.IsBadRequest(err) {
		t.Errorf("bad continue token: %v, want BadRequest", err)
	}
}

func TestListTooOldIsGone(t *testing.T) {
	s, client := testStore(t, defaultOptions())
	first := mustCreate(t, s, newPod("a", "p0", "", nil))
	mustCreate(t, s, newPod("a", "p1", "", nil))
	page := mustList(t, s, "a", ListOptions{Limit: 1})
	last := mustCreate(t, s, newPod("a", "p2", "", nil))
	rev, _ := strconv.ParseInt(last.ResourceVersion, 10, 64)
	if _, err := client.Compact(context.Background(), rev); err != nil {
		t.Fatal(err)
	}
	_, err := s.List(context.Background(), "a", ListOptions{ResourceVersion: first.ResourceVersion, ResourceVersionMatch: metav1.ResourceVersionMatchExact})
	if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
		t.Errorf("exact list at a compacted rv: %v, want 410", err)
	}
	_, err = s.List(context.Background(), "a", ListOptions{Limit: 1, Continue: page.Continue})
	if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
		t.Errorf("continue at a compacted rv: %v, want 410", err)
	}
}

func TestListFromCache(t *testing.T) {
	s, _ := testStore(t, defaultOptions())
	mustCreate(t, s, newPod("a", "on1", "node1", nil))
	mustCreate(t, s, newPod("a", "on2", "node2", nil))
	last := mustCreate(t, s, newPod("b", "also-on1", "node1", nil))

	// Not older than the last write: the cache waits until it has it.
	list := mustList(t, s, "", ListOptions{ResourceVersion: last.ResourceVersion})
	if len(list.Items) != 3 || list.ResourceVersion < last.ResourceVersion {
		t.Fatalf("cache list = %v at %s", names(t, list), list.ResourceVersion)
	}
	// The agent's view: pods bound to node1 only.
	onNode1 := ListOptions{ResourceVersion: "0", FieldSelector: fields.OneTermEqualSelector("spec.nodeName", "node1")}
	if got := fmt.Sprint(names(t, mustList(t, s, "", onNode1))); got != "[a/on1 b/also-on1]" {
		t.Errorf("spec.nodeName=node1 = %s", got)
	}
	if got := fmt.Sprint(names(t, mustList(t, s, "a", onNode1))); got != "[a/on1]" {
		t.Errorf("spec.nodeName=node1 in a = %s", got)
	}
	// Items are the caller's to modify.
	list.Items[0].Labels = map[string]string{"mutated": "yes"}
	if again := mustList(t, s, "", ListOptions{ResourceVersion: "0"}); again.Items[0].Labels["mutated"] != "" {
		t.Error("modifying a listed item changed the cache")
	}

	// A resourceVersion the cache never reaches times out with 504 ResourceVersionTooLarge.
	s.cache.opts.freshTimeout = 200e6
	_, err := s.List(context.Background(), "", ListOptions{ResourceVersion: "999999"})
	if !apierrors.IsTimeout(err) || !apierrors.HasStatusCause(err, metav1.CauseTypeResourceVersionTooLarge) {
		t.Errorf("list at a future rv: %v, want Timeout with ResourceVersionTooLarge", err)
	}
}

// A write to another resource moves etcd's revision; a list at that revision must still be
// served, through etcd's progress notifications.
func TestListCacheCatchesUpWithOtherResources(t *testing.T) {
	s, client := testStore(t, defaultOptions())
	mustCreate(t, s, newPod("a", "p", "", nil))
	resp, err := client.Put(context.Background(), "/registry/configmaps/a/other", "x")
	if err != nil {
		t.Fatal(err)
	}
	rv := strconv.FormatInt(resp.Header.Revision, 10)
	list := mustList(t, s, "", ListOptions{ResourceVersion: rv, ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan})
	if n, _ := strconv.ParseInt(list.ResourceVersion, 10, 64); n < resp.Header.Revision {
		t.Errorf("list at %s, want >= %s", list.ResourceVersion, rv)
	}
}
