package openapi

import "k8s.io/kube-openapi/pkg/common"

// The query parameters kube-apiserver accepts, as its OpenAPI documents
// declare them. Clients read these declarations: kubectl sends
// fieldValidation=Strict only when a PATCH operation of the kind lists
// fieldValidation, and dry-run support is detected the same way.

func queryParam(name, dataType, description string) parameter {
	return parameter{name: name, dataType: dataType, description: description, kind: common.QueryParameterKind}
}

func pathParam(name, description string) parameter {
	return parameter{name: name, dataType: "string", description: description, kind: common.PathParameterKind, required: true}
}

func bodyParam() parameter {
	return parameter{name: "body", dataType: "object", kind: common.BodyParameterKind, required: true}
}

var (
	paramPretty = queryParam("pretty", "string",
		"If 'true', then the output is pretty printed.")
	paramNamespace = pathParam("namespace",
		"object name and auth scope, such as for teams and projects")
	paramDryRun = queryParam("dryRun", "string",
		"When present, indicates that modifications should not be persisted. The only valid value is All: "+
			"all dry run stages are processed, nothing is stored.")
	paramFieldManager = queryParam("fieldManager", "string",
		"A name associated with the actor or entity making these changes; at most 128 printable characters. "+
			"Required for apply requests (application/apply-patch), optional otherwise.")
	paramFieldValidation = queryParam("fieldValidation", "string",
		"How the server handles unknown or duplicate fields in the request body: Ignore drops them silently, "+
			"Warn (the default) drops them and returns a warning header per field, "+
			"Strict fails the request with BadRequest naming every such field.")
	paramForce = queryParam("force", "boolean",
		"Force applies the request over fields owned by other managers, taking them over. "+
			"Must be unset for patches other than apply.")
	paramGracePeriod = queryParam("gracePeriodSeconds", "integer",
		"Seconds before the object is deleted; zero means immediately. Unset uses the kind's default.")
	paramIgnoreStoreReadError = queryParam("ignoreStoreReadErrorWithClusterBreakingPotential", "boolean",
		"If true, deletes an object whose stored data cannot be read or decoded, skipping finalizers and "+
			"graceful deletion. Use with care.")
	paramOrphanDependents = queryParam("orphanDependents", "boolean",
		"Deprecated: use propagationPolicy. If true, dependents are orphaned; if false, they are deleted "+
			"in the background.")
	paramPropagationPolicy = queryParam("propagationPolicy", "string",
		"Whether and how garbage collection deletes dependents: Orphan, Background or Foreground.")
	paramAllowWatchBookmarks = queryParam("allowWatchBookmarks", "boolean",
		"Asks for watch events of type BOOKMARK, which carry only a resourceVersion. The server may "+
			"send them at any time. Ignored for non-watch requests.")
	paramContinue = queryParam("continue", "string",
		"The continue token of a previous paginated list call, to retrieve the next page.")
	paramFieldSelector = queryParam("fieldSelector", "string",
		"A selector to restrict the returned objects by their fields. Defaults to everything.")
	paramLabelSelector = queryParam("labelSelector", "string",
		"A selector to restrict the returned objects by their labels. Defaults to everything.")
	paramLimit = queryParam("limit", "integer",
		"The maximum number of objects to return for a list call; if there are more, the response's "+
			"continue field lets the client fetch the next page.")
	paramResourceVersion = queryParam("resourceVersion", "string",
		"Which resource versions the request may be served from; see the resourceVersion semantics of the "+
			"Kubernetes API. Defaults to unset.")
	paramResourceVersionMatch = queryParam("resourceVersionMatch", "string",
		"How resourceVersion applies to list calls: Exact or NotOlderThan. Defaults to unset.")
	paramSendInitialEvents = queryParam("sendInitialEvents", "boolean",
		"With watch=true, starts the watch stream with synthetic ADDED events for the current state, "+
			"followed by a bookmark annotated k8s.io/initial-events-end.")
	paramTimeoutSeconds = queryParam("timeoutSeconds", "integer",
		"Timeout for the list or watch call, regardless of activity.")
	paramWatch = queryParam("watch", "boolean",
		"Watch for changes to the described resources and return them as a stream of add, update and "+
			"remove notifications. Specify resourceVersion.")
)

func nameParam(kind string) parameter {
	return pathParam("name", "name of the "+kind)
}

// listParams are the parameters of list and watch calls.
func listParams() []common.Parameter {
	return []common.Parameter{
		paramAllowWatchBookmarks, paramContinue, paramFieldSelector, paramLabelSelector, paramLimit,
		paramResourceVersion, paramResourceVersionMatch, paramSendInitialEvents, paramTimeoutSeconds, paramWatch,
	}
}

// writeParams are the parameters of create and update calls.
func writeParams() []common.Parameter {
	return []common.Parameter{paramDryRun, paramFieldManager, paramFieldValidation}
}

func patchParams() []common.Parameter {
	return append(writeParams(), paramForce)
}

func deleteParams() []common.Parameter {
	return []common.Parameter{
		paramDryRun, paramGracePeriod, paramIgnoreStoreReadError, paramOrphanDependents, paramPropagationPolicy,
	}
}

func deleteCollectionParams() []common.Parameter {
	params := deleteParams()
	for _, p := range listParams() {
		// Deleting a collection lists it first, but never watches it.
		if name := p.Name(); name != "watch" && name != "allowWatchBookmarks" {
			params = append(params, p)
		}
	}
	return params
}
