package agent

import (
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	v1 "k8s.io/api/core/v1"
)

// startHealthServer serves grpc.health.v1 on a loopback port.
func startHealthServer(t *testing.T) (*health.Server, int32) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return hs, int32(l.Addr().(*net.TCPAddr).Port)
}

func TestProbeGRPC(t *testing.T) {
	hs, port := startHealthServer(t)
	svc := "skiff.Backend"
	hs.SetServingStatus(svc, healthpb.HealthCheckResponse_SERVING)
	ctx := t.Context()

	if err := probeGRPC(ctx, &v1.GRPCAction{Port: port}, "127.0.0.1", time.Second); err != nil {
		t.Errorf("overall health: %v", err)
	}
	if err := probeGRPC(ctx, &v1.GRPCAction{Port: port, Service: &svc}, "127.0.0.1", time.Second); err != nil {
		t.Errorf("serving service: %v", err)
	}
	hs.SetServingStatus(svc, healthpb.HealthCheckResponse_NOT_SERVING)
	err := probeGRPC(ctx, &v1.GRPCAction{Port: port, Service: &svc}, "127.0.0.1", time.Second)
	if err == nil || err.Error() != `service unhealthy (responded with "NOT_SERVING")` {
		t.Errorf("not serving: %v", err)
	}
	unknown := "nope"
	if err := probeGRPC(ctx, &v1.GRPCAction{Port: port, Service: &unknown}, "127.0.0.1", time.Second); err == nil ||
		!strings.Contains(err.Error(), "NotFound") {
		t.Errorf("unknown service: %v", err)
	}
	hs.Shutdown()
	closed := freePort(t)
	if err := probeGRPC(ctx, &v1.GRPCAction{Port: int32(closed)}, "127.0.0.1", 300*time.Millisecond); err == nil ||
		!strings.Contains(err.Error(), "failed to connect service") {
		t.Errorf("nothing listening: %v", err)
	}
}

// TestGRPCLivenessProbeRestarts runs a gRPC liveness probe through the agent: a service
// that stops serving gets its container restarted.
func TestGRPCLivenessProbeRestarts(t *testing.T) {
	hs, port := startHealthServer(t)
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	env := newTestEnv(t, nil, testPod("web", "uid-1", func(p *v1.Pod) {
		p.Spec.Containers[0].LivenessProbe = &v1.Probe{
			ProbeHandler:  v1.ProbeHandler{GRPC: &v1.GRPCAction{Port: port}},
			PeriodSeconds: 1, FailureThreshold: 1,
		}
		// The fake runtime gives the pod no reachable IP; probe the node's loopback.
		p.Spec.HostNetwork = true
	}))
	env.agent.cfg.NodeIP = "127.0.0.1"
	env.start()
	env.eventually("pod running", func() bool { return env.getPod("web").Status.Phase == v1.PodRunning })
	time.Sleep(1500 * time.Millisecond)
	if cs := containerStatusOf(env.getPod("web")); cs.RestartCount != 0 {
		t.Fatalf("restarted while serving: %+v", cs)
	}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	env.eventually("restart after NOT_SERVING", func() bool { return containerStatusOf(env.getPod("web")).RestartCount >= 1 })
	var log eventLog
	evs := strings.Join(env.drainEvents(&log), "\n")
	if !strings.Contains(evs, `Warning Unhealthy Liveness probe failed: service unhealthy (responded with "NOT_SERVING")`) {
		t.Errorf("events:\n%s", evs)
	}
}
