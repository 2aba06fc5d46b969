package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strconv"
	"time"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// listenKubeletAPI binds the kubelet API's port. It runs before the agent starts its
// loops: a port another process holds is a startup error, not a node that silently serves
// no logs, exec or port-forward.
func (a *Agent) listenKubeletAPI() (net.Listener, error) {
	tlsCfg, err := a.kubeletTLSConfig()
	if err != nil {
		return nil, fmt.Errorf("kubelet API TLS: %w", err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(a.cfg.KubeletPort)))
	if err != nil {
		return nil, fmt.Errorf("kubelet API port %d: %w", a.cfg.KubeletPort, err)
	}
	return tls.NewListener(ln, tlsCfg), nil
}

// runKubeletServer serves the kubelet API on ln until ctx ends.
func (a *Agent) runKubeletServer(ctx context.Context, ln net.Listener) {
	logger := klog.FromContext(ctx).WithName("kubelet-api")
	srv := &http.Server{
		Handler:           a.kubeletHandler(),
		ReadHeaderTimeout: 30 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	if a.cfg.ClientCAFile == "" {
		logger.Info("No ClientCAFile: the kubelet API serves only /healthz")
	}
	logger.Info("Serving the kubelet API", "port", a.cfg.KubeletPort)
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Error(err, "Kubelet API stopped")
	}
}

func (a *Agent) kubeletTLSConfig() (*tls.Config, error) {
	var cert tls.Certificate
	var err error
	if a.cfg.ServingCertFile != "" {
		cert, err = tls.LoadX509KeyPair(a.cfg.ServingCertFile, a.cfg.ServingKeyFile)
	} else {
		cert, err = selfSignedCert(a.cfg.NodeName, a.cfg.NodeIP)
	}
	if err != nil {
		return nil, fmt.Errorf("kubelet serving certificate: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if a.cfg.ClientCAFile != "" {
		pem, err := os.ReadFile(a.cfg.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("read client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificate in client CA file %s", a.cfg.ClientCAFile)
		}
		// Verified when presented; handlers other than /healthz insist on one.
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

// selfSignedCert is what kubelet makes for itself when given no serving certificate.
func selfSignedCert(name, ip string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name + "@" + strconv.FormatInt(now.Unix(), 10)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{name, "localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	if parsed := net.ParseIP(ip); parsed != nil {
		tmpl.IPAddresses = append(tmpl.IPAddresses, parsed)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// kubeletHandler routes the kubelet API paths the apiserver proxies to.
func (a *Agent) kubeletHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.Handle("GET /containerLogs/{namespace}/{pod}/{container}", a.authenticated(a.serveContainerLogs))
	mux.Handle("/exec/{namespace}/{pod}/{container}", a.authenticated(a.serveExec))
	mux.Handle("/attach/{namespace}/{pod}/{container}", a.authenticated(a.serveAttach))
	mux.Handle("/portForward/{namespace}/{pod}", a.authenticated(a.servePortForward))
	mux.Handle("GET /pods", a.authenticated(a.servePods))
	// kubelet's profiling handler (enableProfilingHandler): the agent's own pprof profiles.
	mux.Handle("GET /debug/pprof/{profile}", a.authenticated(serveProfile))
	mux.Handle("GET /metrics", a.authenticated(a.serveMetrics))
	mux.Handle("GET /stats/summary", a.authenticated(a.serveStatsSummary))
	return mux
}

// kubeletAPIUser is the identity the apiserver proxies logs, exec, attach and
// port-forward with; kube-apiserver's kubelet client uses the same name.
const kubeletAPIUser = "kube-apiserver-kubelet-client"

// authenticated admits callers holding a certificate the client CA verified and naming the
// apiserver's kubelet client or a member of system:masters. Other identities the cluster
// CA signed (the scheduler, other nodes) must not read logs or exec into pods: without
// RBAC this is kubelet's nodes/proxy authorization, reduced to the identities that need it.
func (a *Agent) authenticated(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.cfg.ClientCAFile == "" || r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			http.Error(w, "Forbidden: the kubelet API needs a client certificate signed by its client CA", http.StatusForbidden)
			return
		}
		subject := r.TLS.VerifiedChains[0][0].Subject
		if subject.CommonName != kubeletAPIUser && !slices.Contains(subject.Organization, "system:masters") {
			http.Error(w, fmt.Sprintf("Forbidden: user %q may not use the kubelet API", subject.CommonName), http.StatusForbidden)
			return
		}
		h(w, r)
	})
}

// lookupPod finds a pod bound to this node and its runtime state.
func (a *Agent) lookupPod(r *http.Request) (*v1.Pod, *runtimePod, int, error) {
	ns, name := r.PathValue("namespace"), r.PathValue("pod")
	for _, p := range a.source.list() {
		if p.Namespace == ns && p.Name == name {
			rp, err := a.getRuntimePod(r.Context(), p.UID)
			if err != nil {
				return nil, nil, http.StatusInternalServerError, err
			}
			return p, rp, 0, nil
		}
	}
	return nil, nil, http.StatusNotFound, fmt.Errorf("pod %s/%s not found on node %s", ns, name, a.cfg.NodeName)
}

// runningContainer is the ID of the running instance of a container.
func (a *Agent) runningContainer(w http.ResponseWriter, r *http.Request) (string, bool) {
	pod, rp, code, err := a.lookupPod(r)
	if err != nil {
		http.Error(w, err.Error(), code)
		return "", false
	}
	name := r.PathValue("container")
	if specContainer(pod, name) == nil {
		http.Error(w, fmt.Sprintf("container %s is not valid for pod %s", name, pod.Name), http.StatusBadRequest)
		return "", false
	}
	attempts := rp.containersNamed(name)
	if len(attempts) == 0 || attempts[0].State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		http.Error(w, fmt.Sprintf("container %s in pod %s is not running", name, pod.Name), http.StatusBadRequest)
		return "", false
	}
	return attempts[0].Id, true
}

func (a *Agent) serveExec(w http.ResponseWriter, r *http.Request) {
	id, ok := a.runningContainer(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	tty := boolParam(q, "tty")
	resp, err := a.cfg.Runtime.Exec(r.Context(), &runtimeapi.ExecRequest{
		ContainerId: id, Cmd: q["command"], Tty: tty,
		Stdin: boolParam(q, "input"), Stdout: boolParam(q, "output"), Stderr: boolParam(q, "error") && !tty,
	})
	a.proxyStream(w, r, resp.GetUrl(), err)
}

func (a *Agent) serveAttach(w http.ResponseWriter, r *http.Request) {
	id, ok := a.runningContainer(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	tty := boolParam(q, "tty")
	resp, err := a.cfg.Runtime.Attach(r.Context(), &runtimeapi.AttachRequest{
		ContainerId: id, Tty: tty,
		Stdin: boolParam(q, "input"), Stdout: boolParam(q, "output"), Stderr: boolParam(q, "error") && !tty,
	})
	a.proxyStream(w, r, resp.GetUrl(), err)
}

func (a *Agent) servePortForward(w http.ResponseWriter, r *http.Request) {
	pod, rp, code, err := a.lookupPod(r)
	if err != nil {
		http.Error(w, err.Error(), code)
		return
	}
	sb := rp.readySandbox()
	if sb == nil {
		http.Error(w, fmt.Sprintf("pod %s has no running sandbox", pod.Name), http.StatusBadRequest)
		return
	}
	resp, err := a.cfg.Runtime.PortForward(r.Context(), &runtimeapi.PortForwardRequest{PodSandboxId: sb.Id})
	a.proxyStream(w, r, resp.GetUrl(), err)
}

// proxyStream hands the caller's (upgrading) request to the runtime's streaming server,
// as kubelet does since it stopped redirecting.
func (a *Agent) proxyStream(w http.ResponseWriter, r *http.Request, target string, err error) {
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		http.Error(w, fmt.Sprintf("runtime returned a bad streaming URL %q", target), http.StatusInternalServerError)
		return
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = u
			pr.Out.Host = u.Host
		},
		FlushInterval: -1,
	}
	proxy.ServeHTTP(w, r)
}

func boolParam(q url.Values, name string) bool {
	v := q.Get(name)
	return v == "1" || v == "true"
}
