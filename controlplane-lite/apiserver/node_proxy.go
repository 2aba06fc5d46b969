package apiserver

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/klog/v2"
)

// nodeProxyGR names the nodes/proxy subresource in errors.
func nodeProxyGR() schema.GroupResource { return schema.GroupResource{Resource: "nodes/proxy"} }

// serveNodeProxy serves /api/v1/nodes/{name}/proxy[/{path...}] when parts (the path
// after the version) is one, and reports whether it was: kubectl get --raw
// /api/v1/nodes/<node>/proxy/stats/summary (or /metrics) reaches the node's kubelet
// API. Only reads are proxied; it is kube-apiserver's node proxy without the write
// verbs, over the same client certificate as pods/log and exec.
func (s *Server) serveNodeProxy(w http.ResponseWriter, r *http.Request, gv schema.GroupVersion, parts []string) bool {
	if gv != corev1.SchemeGroupVersion || len(parts) < 3 || parts[0] != "nodes" || parts[2] != "proxy" {
		return false
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeStatusError(w, apierrors.NewMethodNotSupported(nodeProxyGR(), verbFor(r, parts[1])))
		return true
	}
	if s.catalog.byGR[schema.GroupResource{Resource: "nodes"}] == nil {
		writeStatusError(w, notFoundPath())
		return true
	}
	if s.kubelet == nil {
		writeStatusError(w, apierrors.NewServiceUnavailable("the node proxy needs the apiserver's kubelet client certificate (KubeletClientCertFile)"))
		return true
	}
	kubeletPath, err := nodeProxyPath(parts[3:])
	if err != nil {
		writeStatusError(w, apierrors.NewBadRequest(err.Error()))
		return true
	}
	target, err := s.nodeKubeletURL(r.Context(), parts[1])
	if err != nil {
		writeStatusError(w, err)
		return true
	}
	target.Path, target.RawQuery = kubeletPath, r.URL.RawQuery
	s.proxyToNode(w, r, target)
	return true
}

// nodeProxyPath is the kubelet path for the segments after proxy/. A ".." segment is
// refused rather than cleaned away: a caller climbing out of the path it named is
// asking for something else than it says.
func nodeProxyPath(segments []string) (string, error) {
	for _, seg := range segments {
		if seg == ".." {
			return "", fmt.Errorf("the node proxy path %q must not contain \"..\"", "/"+strings.Join(segments, "/"))
		}
	}
	return path.Clean("/" + strings.Join(segments, "/")), nil
}

// nodeKubeletURL is https://<node address>:<kubelet port>, as the node reports them.
func (s *Server) nodeKubeletURL(ctx context.Context, name string) (*url.URL, error) {
	obj, err := s.catalog.byGR[schema.GroupResource{Resource: "nodes"}].store.Get(ctx, "", name)
	if err != nil {
		return nil, err
	}
	node, ok := obj.(*corev1.Node)
	if !ok {
		return nil, fmt.Errorf("nodes store returned %T", obj)
	}
	host := nodeAddress(node)
	if host == "" {
		return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("node %s reports no address", node.Name))
	}
	port := int(node.Status.DaemonEndpoints.KubeletEndpoint.Port)
	if port == 0 {
		port = defaultKubeletPort
	}
	return &url.URL{Scheme: "https", Host: net.JoinHostPort(host, strconv.Itoa(port))}, nil
}

// proxyToNode forwards the request to target with the kubelet client certificate. The
// caller's credentials stay here: the kubelet trusts the apiserver, not the caller.
func (s *Server) proxyToNode(w http.ResponseWriter, r *http.Request, target *url.URL) {
	logger := klog.FromContext(r.Context())
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = target
			pr.Out.Host = target.Host
			pr.Out.Header.Del("Authorization")
			pr.Out.Header.Del("Cookie")
		},
		Transport: s.kubelet,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			logger.V(2).Info("Node proxy failed", "target", target.Host, "err", err)
			writeStatusError(w, apierrors.NewServiceUnavailable(fmt.Sprintf("error dialing the kubelet at %s: %v", target.Host, err)))
		},
	}
	proxy.ServeHTTP(w, r)
}
