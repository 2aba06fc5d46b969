package openapi

import (
	"net/http"

	"k8s.io/kube-openapi/pkg/common"
)

// route is one HTTP operation, described through kube-openapi's
// common.Route so that builder (v2) and builder3 (v3) assemble the documents
// exactly as kube-apiserver's go-restful routes would.
type route struct {
	method      string
	path        string
	operationID string
	description string
	params      []common.Parameter
	consumes    []string
	produces    []string
	extensions  map[string]any
	// request is a sample of the body's Go type (nil without body); response
	// samples are keyed by status code. kube-openapi derives the schema
	// names from the Go types.
	request   any
	responses []common.StatusCodeResponse
}

var _ common.Route = (*route)(nil)

func (r *route) Method() string                 { return r.method }
func (r *route) Path() string                   { return r.path }
func (r *route) OperationName() string          { return r.operationID }
func (r *route) Parameters() []common.Parameter { return r.params }
func (r *route) Description() string            { return r.description }
func (r *route) Consumes() []string             { return r.consumes }
func (r *route) Produces() []string             { return r.produces }
func (r *route) Metadata() map[string]any       { return r.extensions }
func (r *route) RequestPayloadSample() any      { return r.request }
func (r *route) ResponsePayloadSample() any     { return nil }

func (r *route) StatusCodeResponses() []common.StatusCodeResponse { return r.responses }

// response is one status code of a route with the Go type of its body.
type response struct {
	code  int
	model any
}

func (r response) Code() int       { return r.code }
func (r response) Message() string { return http.StatusText(r.code) }
func (r response) Model() any      { return r.model }

// parameter is a path, query or body parameter of a route.
type parameter struct {
	name        string
	description string
	required    bool
	kind        common.ParameterKind
	dataType    string
}

func (p parameter) Name() string               { return p.name }
func (p parameter) Description() string        { return p.description }
func (p parameter) Required() bool             { return p.required }
func (p parameter) Kind() common.ParameterKind { return p.kind }
func (p parameter) DataType() string           { return p.dataType }
func (p parameter) AllowMultiple() bool        { return false }

// routeContainer groups the routes served under one root path (one API
// group version, or a discovery endpoint).
type routeContainer struct {
	root   string
	routes []common.Route
}

func (c *routeContainer) RootPath() string                   { return c.root }
func (c *routeContainer) PathParameters() []common.Parameter { return nil }
func (c *routeContainer) Routes() []common.Route             { return c.routes }
