package agent

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	v1 "k8s.io/api/core/v1"
)

// probeGRPC asks the container's grpc.health.v1 service whether it is SERVING, with the
// wording of kubelet's gRPC prober in its failures.
func probeGRPC(ctx context.Context, g *v1.GRPCAction, host string, timeout time.Duration) error {
	service := ""
	if g.Service != nil {
		service = *g.Service
	}
	creds := insecure.NewCredentials()
	if g.Mode != nil && *g.Mode == v1.GRPCProbeModeTLS {
		creds = credentials.NewTLS(&tls.Config{InsecureSkipVerify: true}) // like kubelet: no verification
	}
	addr := net.JoinHostPort(host, strconv.Itoa(int(g.Port)))
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds), grpc.WithUserAgent("kube-probe/1.37"))
	if err != nil {
		return fmt.Errorf("failed to connect service %q: %w", addr, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		st, _ := status.FromError(err)
		switch st.Code() {
		case codes.Unimplemented:
			return fmt.Errorf("this server does not implement the grpc health protocol (grpc.health.v1.Health): %s", st.Message())
		case codes.DeadlineExceeded, codes.Unavailable:
			return fmt.Errorf("timeout: failed to connect service %q within %v: %s", addr, timeout, st.Message())
		default:
			return fmt.Errorf("rpc error: code = %s desc = %s", st.Code(), st.Message())
		}
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("service unhealthy (responded with %q)", resp.GetStatus().String())
	}
	return nil
}
