// Package openapi serves the OpenAPI documents of skiff's apiserver:
// /openapi/v2 (one Swagger 2.0 document) and /openapi/v3 (an index, plus one
// OpenAPI 3.0 document per group version at /openapi/v3/api/v1,
// /openapi/v3/apis/apps/v1, ... and for the discovery endpoints /api, /apis,
// /apis/<group> and /version).
//
// Clients depend on these documents more than it seems. The stock kubectl
// reads the v3 document of a kind's group version before create, apply,
// patch, edit and explain: when the kind's PATCH operation declares the
// fieldValidation query parameter it leaves field validation to the server
// (and sends fieldValidation=Strict), otherwise it fetches /openapi/v2 and
// validates on the client; apply and patch take list merge keys and
// strategies (x-kubernetes-patch-merge-key, x-kubernetes-patch-strategy,
// x-kubernetes-list-type) from the schemas; explain finds a kind's schema
// through its x-kubernetes-group-version-kind extension.
//
// Nothing here is written by hand: the schemas are generated from the
// k8s.io/api and k8s.io/apimachinery Go types by kube-openapi's openapi-gen
// into the generated package (hack/update-generated.sh regenerates it), and
// the paths come from the Resource descriptions given to New, laid out with
// kube-apiserver's paths, operation IDs, parameters and extensions, and
// assembled by kube-openapi's builder (v2) and builder3 (v3).
//
// New builds and encodes every document once; the Handler is immutable and
// safe for concurrent use. Each v3 document is served as JSON or gnostic
// protobuf, with the SHA-512 of its JSON as ETag and as the hash in the index
// URLs; a request carrying the current hash is cacheable forever
// (Cache-Control: public, immutable), an old hash is redirected to the
// current one. /openapi/v2 is served as JSON or protobuf (client-go's
// discovery asks for protobuf).
//
// Schemas hands the same v3 schemas to the apiserver, for
// managedfields.NewTypeConverter (server-side apply and managedFields).
//
// The apiserver mounts the Handler at /openapi/ (both /openapi/v2 and the
// /openapi/v3 subtree); it answers 404 for any other path.
package openapi
