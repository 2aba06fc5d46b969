package apiserver

import (
	"bytes"
	"context"
	"fmt"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Transformations a client can ask for with the "as" parameter of Accept.
const (
	asNone            = ""
	asTable           = "Table"
	asPartial         = "PartialObjectMetadata"
	asPartialList     = "PartialObjectMetadataList"
	mediaTypeJSON     = runtime.ContentTypeJSON
	mediaTypeProtobuf = runtime.ContentTypeProtobuf
)

// acceptOption is one entry of an Accept header.
type acceptOption struct {
	mediaType string
	params    map[string]string
	q         float64
}

func parseAccept(header string) []acceptOption {
	var opts []acceptOption
	for _, part := range strings.Split(header, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		mt, params, err := mime.ParseMediaType(part)
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
			delete(params, "q")
		}
		opts = append(opts, acceptOption{mediaType: mt, params: params, q: q})
	}
	sort.SliceStable(opts, func(i, j int) bool { return opts[i].q > opts[j].q })
	return opts
}

// outputTarget is the negotiated response encoding.
type outputTarget struct {
	info runtime.SerializerInfo
	as   string
}

// contentType is the Content-Type of a response in this encoding; transformed
// responses name the transformation as kube-apiserver does.
func (t outputTarget) contentType() string {
	return t.mediaType(false)
}

// mediaType is the Content-Type of a response; a protobuf watch stream says so, as
// kube-apiserver's does.
func (t outputTarget) mediaType(stream bool) string {
	if stream && t.info.MediaType == mediaTypeProtobuf && t.as == asNone {
		return t.info.MediaType + ";stream=watch"
	}
	if t.as == asNone {
		return t.info.MediaType
	}
	return fmt.Sprintf("%s;as=%s;g=%s;v=%s", t.info.MediaType, t.as, metav1.GroupName, metav1.SchemeGroupVersion.Version)
}

// negotiate picks the response encoding from the Accept header. allowed lists the
// "as" transformations the endpoint can produce.
func (s *Server) negotiate(r *http.Request, allowed ...string) (outputTarget, error) {
	header := r.Header.Get("Accept")
	if header == "" {
		return outputTarget{info: s.serializerFor(mediaTypeJSON)}, nil
	}
	for _, opt := range parseAccept(header) {
		if opt.q <= 0 {
			continue
		}
		mt := opt.mediaType
		if mt == "*/*" || mt == "application/*" {
			mt = mediaTypeJSON
		}
		info := s.serializerFor(mt)
		if info.Serializer == nil {
			continue
		}
		as := opt.params["as"]
		if as == asNone {
			return outputTarget{info: info}, nil
		}
		if opt.params["g"] != metav1.GroupName || opt.params["v"] != metav1.SchemeGroupVersion.Version {
			continue
		}
		if contains(allowed, as) && (as == asTable && mt == mediaTypeJSON || as != asTable) {
			return outputTarget{info: info, as: as}, nil
		}
	}
	return outputTarget{}, newStatusError(http.StatusNotAcceptable, metav1.StatusReasonNotAcceptable,
		"only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf")
}

func (s *Server) serializerFor(mediaType string) runtime.SerializerInfo {
	info, _ := runtime.SerializerInfoForMediaType(s.codecs.SupportedMediaTypes(), mediaType)
	return info
}

// withKind returns obj with its apiVersion and kind set to gvk. Objects from the
// store may be shared with the watch cache, so a different kind is set on a copy.
func withKind(obj runtime.Object, gvk schema.GroupVersionKind) runtime.Object {
	if obj.GetObjectKind().GroupVersionKind() == gvk {
		return obj
	}
	obj = obj.DeepCopyObject()
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	return obj
}

// encode serializes obj, whose kind is already set, in the target's media type.
func encode(info runtime.SerializerInfo, obj runtime.Object) ([]byte, error) {
	var buf bytes.Buffer
	if err := info.Serializer.Encode(obj, &buf); err != nil {
		return nil, fmt.Errorf("encode %s: %w", obj.GetObjectKind().GroupVersionKind().Kind, err)
	}
	return buf.Bytes(), nil
}

// writeObject answers with obj (kind set) in the negotiated encoding.
func writeObject(w http.ResponseWriter, code int, t outputTarget, obj runtime.Object) {
	body, err := encode(t.info, obj)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	w.Header().Set("Content-Type", t.contentType())
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// Field validation directives (query parameter fieldValidation).
const (
	fieldValidationIgnore = "Ignore"
	fieldValidationWarn   = "Warn"
	fieldValidationStrict = "Strict"
)

func fieldValidation(r *http.Request) (string, error) {
	v := r.URL.Query().Get("fieldValidation")
	switch v {
	case "":
		// kube-apiserver's default since v1.27: drop unknown fields with a warning.
		return fieldValidationWarn, nil
	case fieldValidationIgnore, fieldValidationWarn, fieldValidationStrict:
		return v, nil
	}
	return "", apierrors.NewBadRequest(fmt.Sprintf("fieldValidation must be one of %q, %q or %q, got %q",
		fieldValidationIgnore, fieldValidationWarn, fieldValidationStrict, v))
}

// decoded is a request body decoded into a typed object.
type decoded struct {
	obj      runtime.Object
	warnings []string
}

// decodeBody decodes data of the given media type as an object of kind gvk,
// honouring the fieldValidation directive for unknown and duplicate fields.
func (s *Server) decodeBody(data []byte, contentType string, gvk schema.GroupVersionKind, into runtime.Object, validation string) (decoded, error) {
	mt := mediaTypeJSON
	if contentType != "" {
		parsed, _, err := mime.ParseMediaType(contentType)
		if err != nil {
			return decoded{}, newStatusError(http.StatusUnsupportedMediaType, metav1.StatusReasonUnsupportedMediaType,
				fmt.Sprintf("the body of the request has an invalid Content-Type %q", contentType))
		}
		mt = parsed
	}
	info := s.serializerFor(mt)
	if info.Serializer == nil {
		return decoded{}, newStatusError(http.StatusUnsupportedMediaType, metav1.StatusReasonUnsupportedMediaType,
			fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s, application/yaml, %s", mediaTypeJSON, mediaTypeProtobuf))
	}
	dec := info.Serializer
	if validation != fieldValidationIgnore && info.StrictSerializer != nil {
		dec = info.StrictSerializer
	}
	obj, actual, err := dec.Decode(data, &gvk, into)
	var warnings []string
	if err != nil {
		if !runtime.IsStrictDecodingError(err) || obj == nil {
			return decoded{}, apierrors.NewBadRequest(err.Error())
		}
		if validation == fieldValidationStrict {
			return decoded{}, apierrors.NewBadRequest(err.Error())
		}
		if strictErr, ok := runtime.AsStrictDecodingError(err); ok {
			for _, e := range strictErr.Errors() {
				warnings = append(warnings, e.Error())
			}
		}
	}
	if actual == nil || *actual != gvk {
		got := "<none>"
		if actual != nil {
			got = actual.String()
		}
		return decoded{}, apierrors.NewBadRequest(fmt.Sprintf("the object provided is %s, but %s was expected", got, gvk))
	}
	return decoded{obj: obj, warnings: warnings}, nil
}

// addWarnings sends warnings in the Warning header format kube-apiserver uses.
func addWarnings(w http.ResponseWriter, warnings []string) {
	for _, msg := range warnings {
		w.Header().Add("Warning", "299 - "+strconv.Quote(msg))
	}
}

// transformer turns stored objects into what the client asked for: the object
// itself, a Table, or PartialObjectMetadata.
type transformer struct {
	s      *Server
	res    *resource
	target outputTarget
	// includeObject is the Table rows' object policy (Metadata unless asked).
	includeObject metav1.IncludeObjectPolicy
	// noHeaders drops the column definitions: a watch sends them only once.
	noHeaders bool
}

func (s *Server) newTransformer(r *http.Request, res *resource, target outputTarget) (*transformer, error) {
	policy := metav1.IncludeObjectPolicy(r.URL.Query().Get("includeObject"))
	switch policy {
	case "":
		policy = metav1.IncludeMetadata
	case metav1.IncludeMetadata, metav1.IncludeObject, metav1.IncludeNone:
	default:
		return nil, apierrors.NewBadRequest(fmt.Sprintf("includeObject must be one of None, Metadata or Object, got %q", policy))
	}
	return &transformer{s: s, res: res, target: target, includeObject: policy}, nil
}

// object transforms one object (not a list) for the response.
func (t *transformer) object(ctx context.Context, obj runtime.Object) (runtime.Object, error) {
	switch t.target.as {
	case asTable:
		return t.table(ctx, obj, []runtime.Object{obj}, nil)
	case asPartial, asPartialList:
		return partialObjectMetadata(obj)
	}
	return withKind(obj, t.res.gvk()), nil
}

// list transforms a list object for the response.
func (t *transformer) list(ctx context.Context, list runtime.Object) (runtime.Object, error) {
	items, err := meta.ExtractList(list)
	if err != nil {
		return nil, fmt.Errorf("extract list items: %w", err)
	}
	listMeta, err := meta.ListAccessor(list)
	if err != nil {
		return nil, fmt.Errorf("read list metadata: %w", err)
	}
	switch t.target.as {
	case asTable:
		return t.table(ctx, list, items, listMeta)
	case asPartial, asPartialList:
		out := &metav1.PartialObjectMetadataList{
			TypeMeta: metav1.TypeMeta{APIVersion: metav1.SchemeGroupVersion.String(), Kind: asPartialList},
			ListMeta: metav1.ListMeta{
				ResourceVersion:    listMeta.GetResourceVersion(),
				Continue:           listMeta.GetContinue(),
				RemainingItemCount: listMeta.GetRemainingItemCount(),
			},
			Items: make([]metav1.PartialObjectMetadata, 0, len(items)),
		}
		for _, item := range items {
			p, err := partialObjectMetadata(item)
			if err != nil {
				return nil, err
			}
			out.Items = append(out.Items, *p)
		}
		return out, nil
	}
	return withKind(list, t.res.listGVK()), nil
}

// table prints src (an object or a list of items) with the resource's strategy and
// fills each row's object as includeObject asks.
func (t *transformer) table(ctx context.Context, src runtime.Object, items []runtime.Object, listMeta metav1.ListInterface) (*metav1.Table, error) {
	table, err := t.res.def.Strategy.ConvertToTable(ctx, src)
	if err != nil {
		return nil, fmt.Errorf("convert %s to a table: %w", t.res.gvr.Resource, err)
	}
	table = table.DeepCopy()
	table.TypeMeta = metav1.TypeMeta{APIVersion: metav1.SchemeGroupVersion.String(), Kind: asTable}
	if listMeta != nil {
		if table.ResourceVersion == "" {
			table.ResourceVersion = listMeta.GetResourceVersion()
		}
		if table.Continue == "" {
			table.Continue = listMeta.GetContinue()
		}
		if table.RemainingItemCount == nil {
			table.RemainingItemCount = listMeta.GetRemainingItemCount()
		}
	} else if m, err := meta.Accessor(src); err == nil && table.ResourceVersion == "" {
		table.ResourceVersion = m.GetResourceVersion()
	}
	if t.noHeaders {
		table.ColumnDefinitions = nil
	}
	for i := range table.Rows {
		var item runtime.Object
		if i < len(items) {
			item = items[i]
		}
		if item == nil {
			item = table.Rows[i].Object.Object
		}
		raw, err := t.rowObject(item)
		if err != nil {
			return nil, err
		}
		table.Rows[i].Object = raw
	}
	return table, nil
}

func (t *transformer) rowObject(item runtime.Object) (runtime.RawExtension, error) {
	if item == nil || t.includeObject == metav1.IncludeNone {
		return runtime.RawExtension{}, nil
	}
	var obj runtime.Object
	if t.includeObject == metav1.IncludeObject {
		obj = withKind(item, t.res.gvk())
	} else {
		p, err := partialObjectMetadata(item)
		if err != nil {
			return runtime.RawExtension{}, err
		}
		obj = p
	}
	raw, err := encode(t.target.info, obj)
	if err != nil {
		return runtime.RawExtension{}, err
	}
	return runtime.RawExtension{Raw: bytes.TrimSpace(raw)}, nil
}

func partialObjectMetadata(obj runtime.Object) (*metav1.PartialObjectMetadata, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, fmt.Errorf("read object metadata: %w", err)
	}
	p := meta.AsPartialObjectMetadata(m)
	p.TypeMeta = metav1.TypeMeta{APIVersion: metav1.SchemeGroupVersion.String(), Kind: asPartial}
	return p, nil
}
