package apiserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/managedfields"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/klog/v2"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/controlplane-lite/apiserver/registry"
	"github.com/skiff-sh/skiff/controlplane-lite/apiserver/storage"
)

// Config is everything the apiserver's HTTP layer needs. New validates it.
type Config struct {
	// BindAddress is the IP to listen on; empty means all addresses.
	BindAddress string
	// Port is the HTTPS port, 1-65535 (kube-apiserver's default is 6443).
	Port int
	// TLSCertFile and TLSKeyFile are the serving certificate and key (PEM).
	TLSCertFile, TLSKeyFile string
	// ClientCAFile holds the CA bundle that signs client certificates (PEM). A client
	// certificate signed by it authenticates the user named by its CN, in the groups
	// named by its O fields.
	ClientCAFile string
	// Definitions are the resources to serve, in the order discovery lists them.
	Definitions []registry.Definition
	// Stores holds one Store for each Definition's GroupResource.
	Stores map[schema.GroupResource]storage.Store
	// OpenAPI serves /openapi/v2 and /openapi/v3...; nil answers 404 there.
	OpenAPI http.Handler
	// KubeletClientCertFile and KubeletClientKeyFile are the client certificate the
	// apiserver presents to kubelets when it proxies pods/log, exec, attach and
	// portforward (kube-apiserver's --kubelet-client-certificate and -key); without
	// them those subresources are not served. KubeletCAFile, when set, verifies the
	// kubelets' serving certificates.
	KubeletClientCertFile, KubeletClientKeyFile, KubeletCAFile string
	// TypeConverter, when set, makes writes record managedFields and enables
	// server-side apply; build it with managedfields.NewTypeConverter from the
	// OpenAPI schemas (openapi.Handler.Schemas). Without it apply answers 415.
	TypeConverter managedfields.TypeConverter
	// HealthChecks run on /livez, /readyz and /healthz next to "ping", each within 2s;
	// give the etcd check here.
	HealthChecks []HealthCheck
	// RequestTimeout bounds every request but watches and the streaming pods
	// subresources (kube-apiserver's --request-timeout); 0 means 60s. A request's
	// ?timeout= may shorten it.
	RequestTimeout time.Duration
}

// Server is the apiserver's HTTP layer. It is safe for concurrent use.
type Server struct {
	cfg    Config
	cert   tls.Certificate
	caPool *x509.CertPool
	scheme *runtime.Scheme
	codecs serializer.CodecFactory
	// params decodes query parameters into ListOptions and DeleteOptions.
	params  runtime.ParameterCodec
	catalog *catalog
	// kubelet reaches kubelets for the proxied pods subresources; nil disables them.
	kubelet *http.Transport
	handler http.Handler
	// started is reported as the build date of /version.
	started time.Time
}

// New validates cfg, loads the certificates it names and builds the request handler.
func New(cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("invalid apiserver config: %w", err)
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = defaultRequestTimeout
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("load serving certificate: %w", err)
	}
	pool, err := loadCAPool(cfg.ClientCAFile)
	if err != nil {
		return nil, err
	}
	scheme, err := newScheme(cfg.Definitions)
	if err != nil {
		return nil, err
	}
	cat, err := newCatalog(cfg.Definitions, cfg.Stores)
	if err != nil {
		return nil, err
	}
	for _, res := range cat.byGVR {
		if res.fms, err = newFieldManagers(cfg.TypeConverter, scheme, res); err != nil {
			return nil, err
		}
	}
	kubelet, err := newKubeletTransport(cfg)
	if err != nil {
		return nil, err
	}
	if kubelet != nil {
		cat.enableKubeletProxy()
	}
	s := &Server{
		cfg:     cfg,
		cert:    cert,
		caPool:  pool,
		scheme:  scheme,
		codecs:  serializer.NewCodecFactory(scheme),
		params:  runtime.NewParameterCodec(scheme),
		catalog: cat,
		kubelet: kubelet,
		started: time.Now(),
	}
	s.handler = s.buildHandler()
	return s, nil
}

func (c *Config) validate() error {
	var errs []error
	if c.BindAddress != "" && net.ParseIP(c.BindAddress) == nil {
		errs = append(errs, fmt.Errorf("BindAddress %q is not an IP address", c.BindAddress))
	}
	if c.Port < 1 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("Port %d is out of range 1-65535", c.Port))
	}
	if c.TLSCertFile == "" || c.TLSKeyFile == "" {
		errs = append(errs, errors.New("TLSCertFile and TLSKeyFile are required"))
	}
	if c.ClientCAFile == "" {
		errs = append(errs, errors.New("ClientCAFile is required"))
	}
	if (c.KubeletClientCertFile == "") != (c.KubeletClientKeyFile == "") {
		errs = append(errs, errors.New("KubeletClientCertFile and KubeletClientKeyFile go together"))
	}
	if c.RequestTimeout < 0 {
		errs = append(errs, fmt.Errorf("RequestTimeout %v is negative", c.RequestTimeout))
	}
	for _, hc := range c.HealthChecks {
		if hc.Name == "" || hc.Check == nil {
			errs = append(errs, errors.New("a HealthCheck needs a Name and a Check"))
		}
	}
	if len(c.Definitions) == 0 {
		errs = append(errs, errors.New("no Definitions"))
	}
	for i := range c.Definitions {
		if err := validateDefinition(&c.Definitions[i], c.Stores); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func validateDefinition(d *registry.Definition, stores map[schema.GroupResource]storage.Store) error {
	gr := d.GroupResource
	switch {
	case gr.Resource == "":
		return errors.New("a Definition has no GroupResource.Resource")
	case d.GroupVersionKind.Version == "" || d.GroupVersionKind.Kind == "":
		return fmt.Errorf("%s: GroupVersionKind %v is incomplete", gr, d.GroupVersionKind)
	case d.GroupVersionKind.Group != gr.Group:
		return fmt.Errorf("%s: kind group %q differs from resource group", gr, d.GroupVersionKind.Group)
	case d.NewFunc == nil || d.NewListFunc == nil:
		return fmt.Errorf("%s: NewFunc and NewListFunc are required", gr)
	case d.Strategy == nil:
		return fmt.Errorf("%s: Strategy is required", gr)
	case stores[gr] == nil:
		return fmt.Errorf("%s: no Store", gr)
	}
	for name, sub := range d.Subresources {
		if sub.New == nil && name != "status" {
			return fmt.Errorf("%s/%s: New is required", gr, name)
		}
		if name == "status" && sub.Status == nil {
			return fmt.Errorf("%s/status: Status strategy is required", gr)
		}
		if name != "status" && sub.Apply == nil {
			return fmt.Errorf("%s/%s: Apply is required", gr, name)
		}
	}
	return nil
}

func loadCAPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read client CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("client CA bundle %s holds no PEM certificate", path)
	}
	return pool, nil
}

// newScheme knows every k8s.io/api type plus the meta.k8s.io types (Table,
// PartialObjectMetadata) and the Definitions' own types, so any served object encodes.
func newScheme(defs []registry.Definition) (*runtime.Scheme, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("build scheme: %w", err)
	}
	if err := metav1.AddMetaToScheme(scheme); err != nil {
		return nil, fmt.Errorf("build scheme: %w", err)
	}
	metav1.AddToGroupVersion(scheme, metav1.SchemeGroupVersion)
	for _, d := range defs {
		gv := d.GroupVersionKind.GroupVersion()
		if !scheme.Recognizes(d.GroupVersionKind) {
			scheme.AddKnownTypeWithName(d.GroupVersionKind, d.NewFunc())
			metav1.AddToGroupVersion(scheme, gv)
		}
		if listGVK := gv.WithKind(d.ListKind); d.ListKind != "" && !scheme.Recognizes(listGVK) {
			scheme.AddKnownTypeWithName(listGVK, d.NewListFunc())
		}
		for _, sub := range d.Subresources {
			if sub.New != nil && !scheme.Recognizes(sub.GroupVersionKind) {
				scheme.AddKnownTypeWithName(sub.GroupVersionKind, sub.New())
			}
		}
	}
	return scheme, nil
}

// Handler returns the whole request handler, authentication included; requests must
// arrive over TLS with a client certificate signed by the client CA.
func (s *Server) Handler() http.Handler { return s.handler }

// TLSConfig returns the serving TLS configuration Run uses: the serving certificate,
// HTTP/2, and client certificates verified against the client CA when given.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{s.cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    s.caPool,
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}
}

// Run serves HTTPS on BindAddress:Port until ctx ends, then shuts down; watches and
// other open requests end with ctx.
func (s *Server) Run(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	addr := net.JoinHostPort(s.cfg.BindAddress, strconv.Itoa(s.cfg.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           s.handler,
		TLSConfig:         s.TLSConfig(),
		ReadHeaderTimeout: 30 * time.Second,
		// Idle keep-alive connections go after a while; watches are not idle.
		IdleTimeout: 90 * time.Second,
		// client-go multiplexes every watch of a process over one HTTP/2 connection;
		// allow as many streams as kube-apiserver does.
		HTTP2: &http.HTTP2Config{MaxConcurrentStreams: 1000},
		// Requests derive from ctx so that long watches end when the server stops.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	errCh := make(chan error, 1)
	go func() { errCh <- srv.ServeTLS(ln, "", "") }()
	logger.Info("Serving securely", "address", ln.Addr().String())

	select {
	case err := <-errCh:
		return fmt.Errorf("serve %s: %w", addr, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		logger.Error(err, "Shutdown did not finish cleanly")
		_ = srv.Close()
	}
	if err := <-errCh; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", addr, err)
	}
	return nil
}
