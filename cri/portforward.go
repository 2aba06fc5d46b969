package cri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/skiff-sh/skiff/network"
)

// PortForward hands out a streaming URL for forwarding connections to a pod's ports.
func (s *service) PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	sb, err := s.store.sandbox(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	if st := sb.State(); st != runtimeapi.PodSandboxState_SANDBOX_READY {
		return nil, fmt.Errorf("sandbox %s is %s, not ready: %w", sb.meta.ID, st, errdefs.ErrFailedPrecondition)
	}
	for _, p := range req.GetPort() {
		if p <= 0 || p > 65535 {
			return nil, fmt.Errorf("port %d is out of range: %w", p, errdefs.ErrInvalidArgument)
		}
	}
	req = proto.CloneOf(req)
	req.PodSandboxId = sb.meta.ID
	return s.stream.handler.GetPortForward(req)
}

// portForward connects one forwarded connection to 127.0.0.1:port inside the pod's
// network namespace and copies both ways until the pod side is done, or the session ends.
func (s *service) portForward(ctx context.Context, sandboxID string, port int32, stream io.ReadWriteCloser) error {
	sb, err := s.store.sandbox(sandboxID)
	if err != nil {
		return err
	}
	if st := sb.State(); st != runtimeapi.PodSandboxState_SANDBOX_READY {
		return fmt.Errorf("sandbox %s is %s, not ready: %w", sb.meta.ID, st, errdefs.ErrFailedPrecondition)
	}
	conn, err := dialInPod(ctx, sb, port)
	if err != nil {
		return err
	}
	defer conn.Close()
	logger := klog.FromContext(ctx).WithValues("podSandboxID", sb.meta.ID, "port", port)
	logger.V(4).Info("Forwarding connection")

	toPod := make(chan error, 1)
	go func() {
		_, err := io.Copy(conn, stream)
		// Pass the client's end of input on, so a request/response server answers and closes.
		_ = conn.CloseWrite()
		toPod <- err
	}()
	fromPod := make(chan error, 1)
	go func() {
		_, err := io.Copy(stream, conn)
		fromPod <- err
	}()
	select {
	case err = <-fromPod:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("forward port %d of sandbox %s: %w", port, sb.meta.ID, err)
	}
	return nil
}

// dialInPod dials 127.0.0.1:port from inside the sandbox's network namespace (or the
// host's, for a host-network pod). The socket stays in the namespace it was made in.
func dialInPod(ctx context.Context, sb *sandbox, port int32) (*net.TCPConn, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))
	var conn net.Conn
	dial := func() error {
		var err error
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp4", addr)
		return err
	}
	var err error
	if hostNetwork(sb.meta.config) || sb.meta.NetnsPath == "" {
		err = dial()
	} else {
		err = network.InNetns(sb.meta.NetnsPath, dial)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to port %d in sandbox %s: %w", port, sb.meta.ID, err)
	}
	return conn.(*net.TCPConn), nil
}
