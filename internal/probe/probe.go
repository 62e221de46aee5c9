// Package probe asks a running tokenauthz whether it serves, through the
// standard gRPC health protocol (grpc.health.v1.Health/Check). It backs
// `tokenauthz health`, the probe for images without curl or grpcurl
// (distroless, compose healthchecks).
package probe

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Health returns the serving status of service ("" for the whole server)
// at addr, over plaintext gRPC, waiting at most until ctx ends. An error
// means no answer: nothing listens, the deadline passed, or the server has
// no such service.
func Health(ctx context.Context, addr, service string) (healthpb.HealthCheckResponse_ServingStatus, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return healthpb.HealthCheckResponse_UNKNOWN, fmt.Errorf("health %s: %w", addr, err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return healthpb.HealthCheckResponse_UNKNOWN, fmt.Errorf("health %s: %w", addr, err)
	}
	return resp.GetStatus(), nil
}
