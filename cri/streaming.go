package cri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/klog/v2"
)

// streamServer serves the URLs that Exec, Attach and PortForward hand out: the
// kubelet's (or crictl's) SPDY or websocket connection for one session, authorized
// by a one-time token. The protocol side (remotecommand v1-v5, portforward) is the
// maintained k8s.io/cri-streaming library, as in containerd's CRI plugin; the
// runtime side is streamRuntime.
type streamServer struct {
	listener net.Listener
	handler  streaming.Server
	http     *http.Server
}

// newStreamServer listens on addr right away so the URLs are known before Serve:
// a port-0 address is resolved to the port the kernel picked.
func newStreamServer(lifetime context.Context, addr string, rt streaming.Runtime) (*streamServer, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for streaming on %s: %w", addr, err)
	}
	cfg := streaming.DefaultConfig
	cfg.Addr = l.Addr().String()
	cfg.BaseURL = &url.URL{Scheme: "http", Host: l.Addr().String(), Path: "/"}
	h, err := streaming.NewServer(cfg, rt)
	if err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("create streaming server: %w", err)
	}
	return &streamServer{
		listener: l,
		handler:  h,
		http: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 30 * time.Second,
			// Upgraded (hijacked) connections outlive the http.Server's own
			// bookkeeping; deriving every request from the server's lifetime lets
			// Close end running sessions too.
			BaseContext: func(net.Listener) context.Context { return lifetime },
		},
	}, nil
}

// serve answers streaming requests until ctx ends.
func (ss *streamServer) serve(ctx context.Context) error {
	errCh := make(chan error, 1)
	go func() { errCh <- ss.http.Serve(ss.listener) }()
	klog.FromContext(ctx).Info("Serving CRI streaming", "address", ss.listener.Addr().String())
	select {
	case err := <-errCh:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("serve streaming: %w", err)
	case <-ctx.Done():
		return ss.close()
	}
}

// close stops listening; sessions in progress end when the service's lifetime does.
func (ss *streamServer) close() error {
	err := ss.http.Close()
	// Serve may never have run; the listener is then still open.
	if cerr := ss.listener.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) && err == nil {
		err = cerr
	}
	return err
}

// streamRuntime connects the streaming library to the service. It is a separate type
// because the service's Exec, Attach and PortForward are the CRI RPCs that hand out
// the URLs.
type streamRuntime struct {
	s *service
}

var _ streaming.Runtime = streamRuntime{}

func (r streamRuntime) Exec(ctx context.Context, containerID string, cmd []string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	return r.s.execStream(ctx, containerID, cmd, streams{in: in, out: out, err: errOut, tty: tty, resize: resize})
}

func (r streamRuntime) Attach(ctx context.Context, containerID string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	return r.s.attachStream(ctx, containerID, streams{in: in, out: out, err: errOut, tty: tty, resize: resize})
}

func (r streamRuntime) PortForward(ctx context.Context, podSandboxID string, port int32, stream io.ReadWriteCloser) error {
	return r.s.portForward(ctx, podSandboxID, port, stream)
}

// streams are one session's client streams; a nil stream was not asked for.
type streams struct {
	in     io.Reader
	out    io.Writer
	err    io.Writer
	tty    bool
	resize <-chan remotecommand.TerminalSize
}

// resizeLoop applies terminal size changes until the channel closes or ctx ends.
func resizeLoop(ctx context.Context, sizes <-chan remotecommand.TerminalSize, apply func(ctx context.Context, w, h uint32) error) {
	if sizes == nil {
		return
	}
	logger := klog.FromContext(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case size, ok := <-sizes:
			if !ok {
				return
			}
			if size.Width == 0 || size.Height == 0 {
				continue
			}
			if err := apply(ctx, uint32(size.Width), uint32(size.Height)); err != nil {
				logger.V(2).Info("Resize terminal failed", "err", err)
			}
		}
	}
}
