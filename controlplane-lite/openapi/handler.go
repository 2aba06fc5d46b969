package openapi

import (
	"bytes"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	openapiv2 "github.com/google/gnostic-models/openapiv2"
	openapiv3 "github.com/google/gnostic-models/openapiv3"
	"github.com/munnerz/goautoneg"
	"google.golang.org/protobuf/proto"
	"k8s.io/klog/v2"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

const (
	v2Path = "/openapi/v2"
	v3Path = "/openapi/v3"

	mimeJSON = "application/json"
	// The protobuf media types of the gnostic OpenAPI models. Clients send
	// the old "@v1.0" spelling (client-go's v2 discovery does); servers
	// answer with the new one, as kube-openapi's handlers do.
	protoV2      = "com.github.proto-openapi.spec.v2.v1.0+protobuf"
	protoV2Old   = "com.github.proto-openapi.spec.v2@v1.0+protobuf"
	protoV3      = "com.github.proto-openapi.spec.v3.v1.0+protobuf"
	protoV3Old   = "com.github.proto-openapi.spec.v3@v1.0+protobuf"
	hashQueryKey = "hash"
)

// Handler serves the OpenAPI v2 and v3 documents of the resources given to
// New. The documents never change after New, so each is encoded once.
type Handler struct {
	v2 encodedDoc
	// v3 maps an index key ("api/v1", "apis/apps/v1") to its document.
	v3      map[string]encodedDoc
	v3Index []byte
	// built is the Last-Modified time of every document.
	built time.Time
	// schemas are the v3 component schemas of all documents, by name.
	schemas map[string]*spec.Schema
}

// encodedDoc is one document as JSON and as gnostic protobuf, with the hash
// clients use as ETag and cache key.
type encodedDoc struct {
	json  []byte
	proto []byte
	hash  string
}

// New builds the OpenAPI documents for resources: a v2 document of all of
// them and a v3 document per group version (plus the discovery endpoints),
// with schemas from the generated definitions of the Kubernetes API types.
func New(resources []Resource) (*Handler, error) {
	scheme, err := newScheme()
	if err != nil {
		return nil, err
	}
	docs, err := buildRoutes(resources, scheme)
	if err != nil {
		return nil, err
	}
	namer := newDefinitionNamer(scheme)
	swagger, err := buildV2(docs, namer)
	if err != nil {
		return nil, err
	}
	v3Docs, err := buildV3(docs, namer)
	if err != nil {
		return nil, err
	}

	h := &Handler{
		v3:      make(map[string]encodedDoc, len(v3Docs)),
		built:   time.Now().UTC().Truncate(time.Second),
		schemas: map[string]*spec.Schema{},
	}
	if h.v2, err = encode(swagger, openapiV2Proto); err != nil {
		return nil, fmt.Errorf("encode OpenAPI v2: %w", err)
	}
	index := v3Index{Paths: make(map[string]v3IndexEntry, len(v3Docs))}
	for key, doc := range v3Docs {
		enc, err := encode(doc, openapiV3Proto)
		if err != nil {
			return nil, fmt.Errorf("encode OpenAPI v3 %s: %w", key, err)
		}
		h.v3[key] = enc
		maps.Copy(h.schemas, doc.Components.Schemas)
		index.Paths[key] = v3IndexEntry{ServerRelativeURL: v3URL(key, enc.hash)}
	}
	if h.v3Index, err = json.Marshal(index); err != nil {
		return nil, fmt.Errorf("encode OpenAPI v3 index: %w", err)
	}
	return h, nil
}

// Schemas returns the OpenAPI v3 schemas of every served kind and of the
// types they use, keyed by name ("io.k8s.api.apps.v1.ReplicaSet"), with
// references in "#/components/schemas/<name>" form and each kind marked by
// its x-kubernetes-group-version-kind extension. This is the input
// k8s.io/apimachinery/pkg/util/managedfields.NewTypeConverter expects, for
// server-side apply and managedFields. The returned map is new on each call;
// the schemas it points to are shared and must not be modified.
func (h *Handler) Schemas() map[string]*spec.Schema { return maps.Clone(h.schemas) }

// v3Index is the /openapi/v3 document: where each group version's document
// is, with its current hash so clients can cache it for good.
type v3Index struct {
	Paths map[string]v3IndexEntry `json:"paths"`
}

type v3IndexEntry struct {
	ServerRelativeURL string `json:"serverRelativeURL"`
}

func v3URL(key, hash string) string {
	u := url.URL{Path: v3Path + "/" + key, RawQuery: url.Values{hashQueryKey: {hash}}.Encode()}
	return u.String()
}

func encode(doc json.Marshaler, toProto func([]byte) ([]byte, error)) (encodedDoc, error) {
	data, err := doc.MarshalJSON()
	if err != nil {
		return encodedDoc{}, err
	}
	pb, err := toProto(data)
	if err != nil {
		return encodedDoc{}, fmt.Errorf("protobuf: %w", err)
	}
	return encodedDoc{json: data, proto: pb, hash: fmt.Sprintf("%X", sha512.Sum512(data))}, nil
}

func openapiV2Proto(data []byte) ([]byte, error) {
	doc, err := openapiv2.ParseDocument(data)
	if err != nil {
		return nil, err
	}
	return proto.Marshal(doc)
}

func openapiV3Proto(data []byte) ([]byte, error) {
	doc, err := openapiv3.ParseDocument(data)
	if err != nil {
		return nil, err
	}
	return proto.Marshal(doc)
}

// ServeHTTP answers /openapi/v2, /openapi/v3 and /openapi/v3/<key>; any
// other path is not found.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	switch path := strings.TrimSuffix(r.URL.Path, "/"); {
	case path == v2Path:
		h.serveDoc(w, r, h.v2, protoV2, protoV2Old)
	case path == v3Path:
		// The index changes whenever a document does: never cache it.
		w.Header().Set("Cache-Control", "no-cache, private")
		w.Header().Set("Content-Type", mimeJSON)
		http.ServeContent(w, r, "", h.built, bytes.NewReader(h.v3Index))
	case strings.HasPrefix(path, v3Path+"/"):
		h.serveV3(w, r, strings.TrimPrefix(path, v3Path+"/"))
	default:
		http.NotFound(w, r)
	}
}

func (h *Handler) serveV3(w http.ResponseWriter, r *http.Request, key string) {
	doc, ok := h.v3[key]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if hash := r.URL.Query().Get(hashQueryKey); hash != "" {
		if hash != doc.hash {
			// An old hash: send the client to the current document.
			http.Redirect(w, r, v3URL(key, doc.hash), http.StatusMovedPermanently)
			return
		}
		// The URL names this exact content, so it may be cached forever.
		w.Header().Set("Cache-Control", "public, immutable")
		w.Header().Set("Expires", time.Now().AddDate(1, 0, 0).UTC().Format(http.TimeFormat))
	} else {
		w.Header().Set("Cache-Control", "no-cache, private")
	}
	h.serveDoc(w, r, doc, protoV3, protoV3Old)
}

// serveDoc writes doc as JSON or protobuf, whichever the Accept header
// prefers, with its hash as ETag so conditional requests get 304.
func (h *Handler) serveDoc(w http.ResponseWriter, r *http.Request, doc encodedDoc, protoType, protoTypeOld string) {
	w.Header().Add("Vary", "Accept")
	accept := r.Header.Get("Accept")
	if accept == "" {
		accept = "*/*"
	}
	for _, clause := range goautoneg.ParseAccept(accept) {
		if clause.Type != "application" && clause.Type != "*" {
			continue
		}
		var body []byte
		var contentType string
		switch clause.SubType {
		case "json", "*":
			body, contentType = doc.json, mimeJSON
		case protoType, protoTypeOld:
			body, contentType = doc.proto, "application/"+protoType
		default:
			continue
		}
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Etag", strconv.Quote(doc.hash))
		http.ServeContent(w, r, "", h.built, bytes.NewReader(body))
		return
	}
	klog.FromContext(r.Context()).V(4).Info("No acceptable OpenAPI media type", "path", r.URL.Path, "accept", accept)
	http.Error(w, "acceptable media types: application/json, application/"+protoType, http.StatusNotAcceptable)
}
