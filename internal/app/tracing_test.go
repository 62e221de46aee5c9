package app

import (
	"bytes"
	"context"
	"net"
	"sync"
	"testing"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
)

// collector is an OTLP/gRPC trace receiver: the real protocol, kept in memory.
type collector struct {
	collectorpb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (c *collector) Export(_ context.Context, req *collectorpb.ExportTraceServiceRequest) (*collectorpb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			c.spans = append(c.spans, ss.GetSpans()...)
		}
	}
	return &collectorpb.ExportTraceServiceResponse{}, nil
}

func TestTracingSpansCheckAndTokenRequest(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	srv := grpc.NewServer()
	collectorpb.RegisterTraceServiceServer(srv, c)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+lis.Addr().String())

	f := start(t, "orders.read")
	f.scope(t)
	f.app.Shutdown() // flushes the batch

	c.mu.Lock()
	defer c.mu.Unlock()
	var check *tracepb.Span
	for _, s := range c.spans {
		if s.GetName() == "envoy.service.auth.v3.Authorization/Check" {
			check = s
		}
	}
	if check == nil {
		t.Fatalf("no Check span among %d spans", len(c.spans))
	}
	for _, s := range c.spans {
		if s.GetKind() == tracepb.Span_SPAN_KIND_CLIENT && bytes.Equal(s.GetTraceId(), check.GetTraceId()) && bytes.Equal(s.GetParentSpanId(), check.GetSpanId()) {
			return // the token request is a child of the check
		}
	}
	t.Fatalf("no HTTP client span under the Check span; spans: %v", c.spans)
}
