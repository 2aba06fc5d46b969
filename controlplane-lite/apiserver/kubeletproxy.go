package apiserver

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/klog/v2"
)

// defaultKubeletPort is used when a Node does not report its kubelet endpoint.
const defaultKubeletPort = 10250

// kubeletSubresource describes a pods subresource served by the pod's kubelet.
type kubeletSubresource struct {
	verbs []string
	kind  string
	// path builds the kubelet API path for a pod and container.
	path func(namespace, pod, container string) string
}

// kubeletSubresources are the pods subresources kube-apiserver proxies to the
// kubelet API (kubectl logs, exec, attach, port-forward), with the kubelet's paths.
func kubeletSubresources() map[string]kubeletSubresource {
	withContainer := func(prefix string) func(ns, pod, c string) string {
		return func(ns, pod, c string) string { return kubeletPath(prefix, ns, pod, c) }
	}
	return map[string]kubeletSubresource{
		"attach":      {verbs: []string{"create", "get"}, kind: "PodAttachOptions", path: withContainer("attach")},
		"exec":        {verbs: []string{"create", "get"}, kind: "PodExecOptions", path: withContainer("exec")},
		"log":         {verbs: []string{"get"}, kind: "Pod", path: withContainer("containerLogs")},
		"portforward": {verbs: []string{"create", "get"}, kind: "PodPortForwardOptions", path: func(ns, pod, _ string) string { return kubeletPath("portForward", ns, pod) }},
	}
}

// kubeletPath joins escaped segments into a kubelet URL path, so that no name can add
// a segment or climb out of the pod's directory.
func kubeletPath(segments ...string) string {
	var b strings.Builder
	for _, seg := range segments {
		b.WriteString("/")
		b.WriteString(url.PathEscape(seg))
	}
	return b.String()
}

func podsGVR() schema.GroupVersionResource { return corev1.SchemeGroupVersion.WithResource("pods") }

// newKubeletTransport is the apiserver's client to kubelets: it presents the
// kubelet client certificate and, like kube-apiserver without
// --kubelet-certificate-authority, verifies the kubelet's certificate only when a
// CA is given. HTTP/1.1 only, since exec, attach and port-forward upgrade the
// connection. It is nil when no client certificate is configured.
func newKubeletTransport(cfg Config) (*http.Transport, error) {
	if cfg.KubeletClientCertFile == "" && cfg.KubeletClientKeyFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.KubeletClientCertFile, cfg.KubeletClientKeyFile)
	if err != nil {
		return nil, fmt.Errorf("load kubelet client certificate: %w", err)
	}
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if cfg.KubeletCAFile != "" {
		if tlsCfg.RootCAs, err = loadCAPool(cfg.KubeletCAFile); err != nil {
			return nil, err
		}
	} else {
		tlsCfg.InsecureSkipVerify = true //nolint:gosec // kube-apiserver's default without --kubelet-certificate-authority
	}
	return &http.Transport{TLSClientConfig: tlsCfg, Proxy: nil}, nil
}

// enableKubeletProxy gives the pods resource its kubelet subresources when skiff
// can reach kubelets (a client certificate) and find them (a nodes resource).
func (c *catalog) enableKubeletProxy() {
	pods := c.byGVR[podsGVR()]
	if pods == nil || c.byGR[schema.GroupResource{Resource: "nodes"}] == nil {
		return
	}
	for name := range kubeletSubresources() {
		if _, own := pods.def.Subresources[name]; !own {
			pods.kubeletSubs = append(pods.kubeletSubs, name)
		}
	}
}

// serveKubeletProxy forwards pods/log, exec, attach and portforward to the kubelet
// of the pod's node, connection upgrades included.
func (s *Server) serveKubeletProxy(w http.ResponseWriter, r *http.Request, info *requestInfo) {
	sub := kubeletSubresources()[info.subresource]
	if !contains(sub.verbs, info.verb) {
		writeStatusError(w, apierrors.NewMethodNotSupported(schema.GroupResource{Resource: "pods/" + info.subresource}, info.verb))
		return
	}
	target, err := s.kubeletTarget(r, info, sub)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	logger := klog.FromContext(r.Context())
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = target
			pr.Out.Host = target.Host
		},
		Transport: s.kubelet,
		// Flush at once: kubectl logs -f shows lines as the container writes them.
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			logger.V(2).Info("Kubelet proxy failed", "target", target.Host, "err", err)
			writeStatusError(w, apierrors.NewServiceUnavailable(fmt.Sprintf("error dialing the kubelet at %s: %v", target.Host, err)))
		},
	}
	proxy.ServeHTTP(w, r)
}

// kubeletTarget is the kubelet URL for the request: the node's address and kubelet
// port, the kubelet's path, and the query without the container.
func (s *Server) kubeletTarget(r *http.Request, info *requestInfo, sub kubeletSubresource) (*url.URL, error) {
	obj, err := info.res.store.Get(r.Context(), info.namespace, info.name)
	if err != nil {
		return nil, err
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return nil, fmt.Errorf("pods store returned %T", obj)
	}
	if pod.Spec.NodeName == "" {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("pod %s does not have a host assigned", pod.Name))
	}
	query := kubeletStreamQuery(r.URL.Query())
	container := query.Get("container")
	query.Del("container")
	if container == "" && info.subresource != "portforward" {
		if len(pod.Spec.Containers) != 1 {
			names := make([]string, 0, len(pod.Spec.Containers))
			for _, c := range pod.Spec.Containers {
				names = append(names, c.Name)
			}
			return nil, apierrors.NewBadRequest(fmt.Sprintf("a container name must be specified for pod %s, choose one of: %v", pod.Name, names))
		}
		container = pod.Spec.Containers[0].Name
	}
	if container != "" && !hasContainer(pod, container) {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("container %q is not valid for pod %q", container, pod.Name))
	}
	target, err := s.nodeKubeletURL(r.Context(), pod.Spec.NodeName)
	if err != nil {
		return nil, err
	}
	rawPath := sub.path(pod.Namespace, pod.Name, container)
	path, err := url.PathUnescape(rawPath)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	target.Path, target.RawPath, target.RawQuery = path, rawPath, query.Encode()
	return target, nil
}

// kubeletStreamQuery renames the pod API's stream options (stdin, stdout, stderr) to the
// parameter names the kubelet's exec and attach endpoints read (input, output, error), as
// kube-apiserver does when it builds the kubelet URL.
func kubeletStreamQuery(query url.Values) url.Values {
	for podParam, kubeletParam := range map[string]string{
		"stdin": corev1.ExecStdinParam, "stdout": corev1.ExecStdoutParam, "stderr": corev1.ExecStderrParam,
	} {
		if values, ok := query[podParam]; ok {
			delete(query, podParam)
			query[kubeletParam] = values
		}
	}
	return query
}

// hasContainer reports whether name is one of pod's containers, init containers or
// ephemeral containers: anything else must not reach the kubelet's URL path.
func hasContainer(pod *corev1.Pod, name string) bool {
	for _, c := range pod.Spec.Containers {
		if c.Name == name {
			return true
		}
	}
	for _, c := range pod.Spec.InitContainers {
		if c.Name == name {
			return true
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		if c.Name == name {
			return true
		}
	}
	return false
}

// nodeAddress prefers the internal IP, as kube-apiserver's default
// --kubelet-preferred-address-types does.
func nodeAddress(node *corev1.Node) string {
	for _, t := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP, corev1.NodeHostName} {
		for _, a := range node.Status.Addresses {
			if a.Type == t && a.Address != "" {
				return a.Address
			}
		}
	}
	return ""
}
