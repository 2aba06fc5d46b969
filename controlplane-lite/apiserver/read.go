package apiserver

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metainternalversionvalidation "k8s.io/apimachinery/pkg/apis/meta/internalversion/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/klog/v2"

	"github.com/skiff-sh/skiff/controlplane-lite/apiserver/storage"
)

// minWatchTimeout is kube-apiserver's --min-request-timeout default: a watch without
// timeoutSeconds lasts between one and two times this, so that clients spread out
// when they come back.
const minWatchTimeout = 30 * time.Minute

func (s *Server) serveGet(w http.ResponseWriter, r *http.Request, info *requestInfo) {
	target, err := s.negotiate(r, asTable, asPartial)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	tr, err := s.newTransformer(r, info.res, target)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	obj, err := info.res.store.Get(r.Context(), info.namespace, info.name)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	out, err := tr.object(r.Context(), obj)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	writeObject(w, http.StatusOK, target, out)
}

// collectionRequest is what list and watch share: the negotiated output, the transformer
// to it, and the parsed list options (raw as the client sent them).
type collectionRequest struct {
	target outputTarget
	tr     *transformer
	opts   storage.ListOptions
	raw    *metav1.ListOptions
}

func (s *Server) newCollectionRequest(r *http.Request, info *requestInfo, streaming bool, allowed ...string) (*collectionRequest, error) {
	target, err := s.negotiate(r, allowed...)
	if err == nil && streaming && target.info.StreamSerializer == nil {
		err = newStatusError(http.StatusNotAcceptable, metav1.StatusReasonNotAcceptable, "the media type cannot be streamed")
	}
	if err != nil {
		return nil, err
	}
	tr, err := s.newTransformer(r, info.res, target)
	if err != nil {
		return nil, err
	}
	opts, raw, err := s.listOptions(r, info.res)
	if err != nil {
		return nil, err
	}
	return &collectionRequest{target: target, tr: tr, opts: opts, raw: raw}, nil
}

func (s *Server) serveList(w http.ResponseWriter, r *http.Request, info *requestInfo) {
	req, err := s.newCollectionRequest(r, info, false, asTable, asPartialList)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	target, tr, opts := req.target, req.tr, req.opts
	list, err := info.res.store.List(r.Context(), info.namespace, opts)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	out, err := tr.list(r.Context(), list)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	writeObject(w, http.StatusOK, target, out)
}

// listOptions parses the list and watch query parameters, rejecting selectors on
// fields the resource cannot select by.
func (s *Server) listOptions(r *http.Request, res *resource) (storage.ListOptions, *metav1.ListOptions, error) {
	var raw metav1.ListOptions
	if err := s.params.DecodeParameters(r.URL.Query(), metav1.SchemeGroupVersion, &raw); err != nil {
		return storage.ListOptions{}, nil, apierrors.NewBadRequest(err.Error())
	}
	opts := storage.ListOptions{
		ResourceVersion:      raw.ResourceVersion,
		ResourceVersionMatch: raw.ResourceVersionMatch,
		Limit:                raw.Limit,
		Continue:             raw.Continue,
		AllowWatchBookmarks:  raw.AllowWatchBookmarks,
		SendInitialEvents:    raw.SendInitialEvents,
	}
	if raw.LabelSelector != "" {
		sel, err := labels.Parse(raw.LabelSelector)
		if err != nil {
			return storage.ListOptions{}, nil, apierrors.NewBadRequest(fmt.Sprintf("unable to parse requirement: %v", err))
		}
		opts.LabelSelector = sel
	}
	if raw.FieldSelector != "" {
		sel, err := fields.ParseSelector(raw.FieldSelector)
		if err != nil {
			return storage.ListOptions{}, nil, apierrors.NewBadRequest(err.Error())
		}
		for _, req := range sel.Requirements() {
			if !res.fieldKeys.Has(req.Field) {
				return storage.ListOptions{}, nil, apierrors.NewBadRequest(fmt.Sprintf("field label not supported: %s", req.Field))
			}
		}
		opts.FieldSelector = sel
	}
	// The same rules as kube-apiserver for resourceVersionMatch, continue and
	// sendInitialEvents (watch-list, client-go's default since v1.35).
	check := &metainternalversion.ListOptions{
		Watch:                raw.Watch || verbFor(r, "") == "watch",
		ResourceVersion:      raw.ResourceVersion,
		ResourceVersionMatch: raw.ResourceVersionMatch,
		Continue:             raw.Continue,
		SendInitialEvents:    raw.SendInitialEvents,
	}
	if errs := metainternalversionvalidation.ValidateListOptions(check, true); len(errs) > 0 {
		return storage.ListOptions{}, nil, apierrors.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: "ListOptions"}, "", errs)
	}
	return opts, &raw, nil
}

func (s *Server) serveWatch(w http.ResponseWriter, r *http.Request, info *requestInfo) {
	req, err := s.newCollectionRequest(r, info, true, asTable, asPartial, asPartialList)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	tr, opts, raw := req.tr, req.opts, req.raw
	timeout := minWatchTimeout + rand.N(minWatchTimeout)
	if raw.TimeoutSeconds != nil {
		timeout = time.Duration(*raw.TimeoutSeconds) * time.Second
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	wi, err := info.res.store.Watch(ctx, info.namespace, opts)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	defer wi.Stop()
	streamWatch(ctx, w, tr, wi)
}

// streamWatch writes each event as a WatchEvent frame ({"type":..,"object":..} lines
// for JSON) and flushes it, until the watch ends, the timeout passes or the client
// goes away.
func streamWatch(ctx context.Context, w http.ResponseWriter, tr *transformer, wi watch.Interface) {
	logger := klog.FromContext(ctx)
	stream := tr.target.info.StreamSerializer
	w.Header().Set("Content-Type", tr.target.mediaType(true))
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	flush := func() {
		if flusher != nil {
			flusher.Flush()
		}
	}
	flush()
	frames := stream.Framer.NewFrameWriter(w)
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-wi.ResultChan():
			if !ok {
				return
			}
			obj, err := tr.event(ctx, ev)
			if err != nil {
				logger.Error(err, "Cannot transform watch event", "type", ev.Type)
				obj = statusObject(errorStatus(err))
				ev.Type = watch.Error
			}
			raw, err := encode(tr.target.info, obj)
			if err != nil {
				logger.Error(err, "Cannot encode watch event", "type", ev.Type)
				return
			}
			frame := &metav1.WatchEvent{Type: string(ev.Type), Object: runtime.RawExtension{Raw: raw}}
			if err := stream.Serializer.Encode(frame, frames); err != nil {
				logger.V(4).Info("Watch client went away", "err", err)
				return
			}
			flush()
		}
	}
}

// event transforms the object of one watch event. Tables carry their column
// definitions only in the first event, as kube-apiserver sends them.
func (tr *transformer) event(ctx context.Context, ev watch.Event) (runtime.Object, error) {
	switch ev.Type {
	case watch.Error:
		if st, ok := ev.Object.(*metav1.Status); ok {
			return statusObject(*st), nil
		}
		return statusObject(errorStatus(fmt.Errorf("watch error of type %T", ev.Object))), nil
	case watch.Bookmark:
		if tr.target.as == asTable {
			tbl := &metav1.Table{TypeMeta: metav1.TypeMeta{APIVersion: metav1.SchemeGroupVersion.String(), Kind: asTable}}
			if p, err := partialObjectMetadata(ev.Object); err == nil {
				tbl.ResourceVersion = p.ResourceVersion
			}
			return tbl, nil
		}
	}
	obj, err := tr.object(ctx, ev.Object)
	if err == nil && tr.target.as == asTable {
		tr.noHeaders = true
	}
	return obj, err
}

func statusObject(st metav1.Status) *metav1.Status {
	st.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	return &st
}
