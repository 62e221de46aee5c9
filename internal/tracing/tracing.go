// Package tracing turns on OpenTelemetry tracing when the standard
// OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set:
// spans go to that OTLP/gRPC endpoint, W3C trace context from Envoy is
// continued, and token requests are child spans of the check that made them.
// Unset, everything here is a no-op.
package tracing

import (
	"context"
	"net/http"
	"os"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
)

// Tracing holds what the rest of the app needs to be traced.
type Tracing struct {
	provider *sdktrace.TracerProvider // nil when off
}

// Enabled reports whether an OTLP endpoint is configured.
func Enabled() bool {
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Start sets up the exporter when Enabled; otherwise it returns a Tracing
// whose options change nothing.
func Start(ctx context.Context) (*Tracing, error) {
	if !Enabled() {
		return &Tracing{}, nil
	}
	exp, err := otlptracegrpc.New(ctx) // endpoint, headers, TLS: the standard OTEL_* variables
	if err != nil {
		return nil, err
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", "tokenauthz")))
	if err != nil {
		return nil, err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return &Tracing{provider: tp}, nil
}

// ServerOptions traces every gRPC call, continuing the caller's trace.
func (t *Tracing) ServerOptions() []grpc.ServerOption {
	if t.provider == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(t.provider), otelgrpc.WithPropagators(propagator()),
	))}
}

// Transport wraps the transport to token endpoints: each request a child span.
func (t *Tracing) Transport(base http.RoundTripper) http.RoundTripper {
	if t.provider == nil {
		return base
	}
	return otelhttp.NewTransport(base, otelhttp.WithTracerProvider(t.provider), otelhttp.WithPropagators(propagator()))
}

// HTTPHandler traces the HTTP check endpoints.
func (t *Tracing) HTTPHandler(h http.Handler, operation string) http.Handler {
	if t.provider == nil {
		return h
	}
	return otelhttp.NewHandler(h, operation, otelhttp.WithTracerProvider(t.provider), otelhttp.WithPropagators(propagator()))
}

// Shutdown flushes spans not yet exported.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t.provider == nil {
		return nil
	}
	return t.provider.Shutdown(ctx)
}

func propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}
