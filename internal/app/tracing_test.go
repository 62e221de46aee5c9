package app

import (
	"bytes"
	"context"
	"encoding/hex"
	"net"
	"net/http"
	"sync"
	"testing"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
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

// TestTracingSpansCheckAndTokenRequest: every entry point continues the
// caller's W3C trace, and the token request is a client span under it.
func TestTracingSpansCheckAndTokenRequest(t *testing.T) {
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	traceparent := "00-" + traceID + "-00f067aa0ba902b7-01"
	tests := []struct {
		name string
		send func(t *testing.T, f *fixture)
	}{
		{"grpc", func(t *testing.T, f *fixture) {
			ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", traceparent)
			if _, err := f.client.Check(ctx, checkRequest("orders.internal")); err != nil {
				t.Fatal(err)
			}
		}},
		{"http-check", func(t *testing.T, f *fixture) {
			httpCheck(t, f, "/check/", http.Header{"Traceparent": {traceparent}})
		}},
		{"http-forward-auth", func(t *testing.T, f *fixture) {
			httpCheck(t, f, "/forward-auth", http.Header{"Traceparent": {traceparent},
				"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/"}, "X-Forwarded-Host": {"orders.internal"}})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := startCollector(t)
			f := start(t, "orders.read")
			tt.send(t, f)
			f.app.Shutdown() // flushes the batch
			c.mu.Lock()
			defer c.mu.Unlock()
			var server *tracepb.Span
			for _, s := range c.spans {
				if s.GetKind() == tracepb.Span_SPAN_KIND_SERVER && hex.EncodeToString(s.GetTraceId()) == traceID {
					server = s
				}
			}
			if server == nil {
				t.Fatalf("no server span continuing trace %s among %d spans", traceID, len(c.spans))
			}
			for _, s := range c.spans {
				if s.GetKind() == tracepb.Span_SPAN_KIND_CLIENT && bytes.Equal(s.GetTraceId(), server.GetTraceId()) && bytes.Equal(s.GetParentSpanId(), server.GetSpanId()) {
					return // the token request is a child of the check
				}
			}
			t.Fatalf("no HTTP client span under the %s span; spans: %v", server.GetName(), c.spans)
		})
	}
}

// startCollector runs an OTLP receiver and points tracing at it.
func startCollector(t *testing.T) *collector {
	t.Helper()
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
	return c
}

// httpCheck asks the HTTP listener for orders.internal and wants it allowed.
func httpCheck(t *testing.T, f *fixture, target string, h http.Header) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+f.app.HTTPAddr()+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "orders.internal"
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Authorization") == "" {
		t.Fatalf("%s: HTTP %d, authorization %q; want an injected token", target, resp.StatusCode, resp.Header.Get("Authorization"))
	}
}
