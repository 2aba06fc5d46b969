package storage

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	rpctypes "go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// maxPageSize bounds one etcd range read of a paged list whose selectors reject most keys.
const maxPageSize = 10000

func (s *store) List(ctx context.Context, namespace string, opts ListOptions) (runtime.Object, error) {
	pred := newPredicate(opts)
	switch {
	case opts.Continue != "", opts.ResourceVersion == "", opts.ResourceVersionMatch == metav1.ResourceVersionMatchExact:
		// The next page of a paged list, a consistent read ("" wants everything written so
		// far), or a read at an exact past revision: etcd answers these.
		return s.listFromEtcd(ctx, namespace, pred, opts)
	default:
		// "0" (any version) or NotOlderThan N: the watch cache is as good as etcd and far cheaper.
		rv, err := parseRV(opts.ResourceVersion)
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		return s.cache.list(ctx, namespace, pred, rv)
	}
}

// predicate is a parsed label and field selector; nil selectors match everything.
type predicate struct {
	label labels.Selector
	field fields.Selector
}

func newPredicate(opts ListOptions) predicate {
	p := predicate{label: opts.LabelSelector, field: opts.FieldSelector}
	if p.label != nil && p.label.Empty() {
		p.label = nil
	}
	if p.field != nil && p.field.Empty() {
		p.field = nil
	}
	return p
}

func (p predicate) everything() bool { return p.label == nil && p.field == nil }

func (p predicate) matches(l labels.Set, f fields.Set) bool {
	return (p.label == nil || p.label.Matches(l)) && (p.field == nil || p.field.Matches(f))
}

func (p predicate) matchesObject(obj runtime.Object, attrs func(runtime.Object) (labels.Set, fields.Set, error)) (bool, error) {
	if p.everything() {
		return true, nil
	}
	l, f, err := attrs(obj)
	if err != nil {
		return false, err
	}
	return p.matches(l, f), nil
}

// continueToken is kube-apiserver's continue token: the revision of the first page and the
// key to go on from, relative to the resource prefix. Clients treat it as opaque.
type continueToken struct {
	APIVersion      string `json:"v"`
	ResourceVersion int64  `json:"rv"`
	StartKey        string `json:"start"`
}

const continueTokenVersion = "meta.k8s.io/v1"

func encodeContinue(rev int64, relativeKey string) (string, error) {
	b, err := json.Marshal(continueToken{APIVersion: continueTokenVersion, ResourceVersion: rev, StartKey: relativeKey})
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func decodeContinue(token string) (continueToken, error) {
	var t continueToken
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return t, fmt.Errorf("continue key is not valid: %w", err)
	}
	if err := json.Unmarshal(b, &t); err != nil {
		return t, fmt.Errorf("continue key is not valid: %w", err)
	}
	if t.APIVersion != continueTokenVersion {
		return t, fmt.Errorf("continue key is not valid: server does not recognize this encoded key version %q", t.APIVersion)
	}
	if t.ResourceVersion <= 0 || strings.Contains(t.StartKey, "..") {
		return t, errors.New("continue key is not valid: incorrect encoded start resourceVersion or key")
	}
	return t, nil
}

// listPage is what one paged etcd list produced.
type listPage struct {
	items     []runtime.Object
	rev       int64
	continueK string
	remaining *int64
}

// listFromEtcd reads the list from etcd, at the latest revision, at an exact one, or at the
// revision pinned by a continue token, filling at most opts.Limit items.
func (s *store) listFromEtcd(ctx context.Context, namespace string, pred predicate, opts ListOptions) (runtime.Object, error) {
	prefix := s.keys.list(namespace)
	start := prefix
	var rev int64
	switch {
	case opts.Continue != "":
		token, err := decodeContinue(opts.Continue)
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		start = s.keys.prefix + token.StartKey
		if !strings.HasPrefix(start, prefix) {
			return nil, apierrors.NewBadRequest("continue key is not valid: it belongs to another list")
		}
		rev = token.ResourceVersion
	case opts.ResourceVersion != "":
		n, err := parseRV(opts.ResourceVersion)
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		rev = n
	}
	page, err := s.readPages(ctx, start, clientv3.GetPrefixRangeEnd(prefix), rev, pred, opts.Limit)
	if err != nil {
		if errors.Is(err, rpctypes.ErrCompacted) {
			return nil, apierrors.NewResourceExpired(fmt.Sprintf(
				"the resourceVersion %d of this list is too old (compacted); start a new list without a continue token or resourceVersion", rev))
		}
		if errors.Is(err, rpctypes.ErrFutureRev) {
			return nil, tooLargeError(rev, 0)
		}
		var status apierrors.APIStatus
		if errors.As(err, &status) {
			return nil, err
		}
		return nil, internalError(ctx, err)
	}
	return s.newList(page.items, page.rev, page.continueK, page.remaining)
}

// readPages reads [start, end) at rev (0: latest) until limit items passed pred.
func (s *store) readPages(ctx context.Context, start, end string, rev int64, pred predicate, limit int64) (listPage, error) {
	var page listPage
	pageSize := limit
	for {
		ops := []clientv3.OpOption{clientv3.WithRange(end)}
		if rev > 0 {
			ops = append(ops, clientv3.WithRev(rev))
		}
		if pageSize > 0 {
			ops = append(ops, clientv3.WithLimit(pageSize))
		}
		resp, err := s.client.Get(ctx, start, ops...)
		if err != nil {
			return page, err
		}
		if rev == 0 {
			// Pin every further page (and the continue token) to the first page's revision.
			rev = resp.Header.Revision
		}
		page.rev = rev
		for i, item := range resp.Kvs {
			obj, err := s.codec.decode(item.Value, item.ModRevision)
			if err != nil {
				return page, apierrors.NewInternalError(err)
			}
			ok, err := pred.matchesObject(obj, s.res.AttrFunc)
			if err != nil {
				return page, apierrors.NewInternalError(err)
			}
			if ok {
				page.items = append(page.items, obj)
			}
			if limit > 0 && int64(len(page.items)) == limit {
				more := i < len(resp.Kvs)-1 || resp.More
				if more {
					if err := page.setContinue(s.keys.prefix, string(item.Key), rev); err != nil {
						return page, err
					}
					if pred.everything() {
						remaining := resp.Count - int64(i) - 1
						page.remaining = &remaining
					}
				}
				return page, nil
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return page, nil
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
		// Selectors rejected much of the page: read more at once next time.
		pageSize = min(pageSize*2, maxPageSize)
	}
}

func (p *listPage) setContinue(resourcePrefix, lastKey string, rev int64) error {
	token, err := encodeContinue(rev, strings.TrimPrefix(lastKey, resourcePrefix)+"\x00")
	if err != nil {
		return err
	}
	p.continueK = token
	return nil
}

// newList builds the list object. Items are written without apiVersion and kind, as
// kube-apiserver writes list items.
func (s *store) newList(items []runtime.Object, rev int64, continueToken string, remaining *int64) (runtime.Object, error) {
	list := s.res.NewListFunc()
	for _, item := range items {
		item.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
	}
	if err := meta.SetList(list, items); err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	listMeta, err := meta.ListAccessor(list)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	listMeta.SetResourceVersion(formatRV(rev))
	listMeta.SetContinue(continueToken)
	listMeta.SetRemainingItemCount(remaining)
	list.GetObjectKind().SetGroupVersionKind(s.res.GroupVersionKind.GroupVersion().WithKind(s.res.GroupVersionKind.Kind + "List"))
	return list, nil
}
