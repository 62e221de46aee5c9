// Package app assembles a running tokenauthz from a configuration: the token
// source, the authz server, the gRPC and HTTP listeners, and their shutdown.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/reflection"

	"github.com/tokenauthz/tokenauthz/authz"
	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/internal/metrics"
	"github.com/tokenauthz/tokenauthz/internal/status"
	"github.com/tokenauthz/tokenauthz/internal/tracing"
	"github.com/tokenauthz/tokenauthz/scopes"
	"github.com/tokenauthz/tokenauthz/tokens"
	"github.com/tokenauthz/tokenauthz/tokens/shared"
)

// ShutdownGrace bounds how long in-flight checks may take to finish on stop.
const ShutdownGrace = 10 * time.Second

// App is a started tokenauthz.
type App struct {
	Authz     *authz.Server
	Source    *tokens.Source
	discovery *tokens.Discovery
	grpc      *grpc.Server
	http      *http.Server
	admin     *http.Server // the status page
	grpcLis   net.Listener
	httpLis   net.Listener
	adminLis  net.Listener
	health    *health.Server
	healthMu  sync.Mutex         // one syncHealth at a time, so a stale verdict never lands last
	draining  atomic.Bool        // set at the start of a drain; readiness fails from then on
	stopping  context.Context    // done when Shutdown starts: ends gRPC health Watch streams
	endWatch  context.CancelFunc // ends stopping
	metrics   *metrics.Metrics
	tracing   *tracing.Tracing
	shared    *shared.Cache // nil unless cache.shared is set
	status    *status.Page
	ctx       context.Context
	cancel    context.CancelFunc
	errs      chan error
	log       *slog.Logger
}

// Start listens on cfg's addresses and serves until ctx ends or Shutdown.
// Token endpoints that are unreachable now are discovered in the background;
// checks that need them answer 503 meanwhile.
func Start(ctx context.Context, cfg *config.Config, log *slog.Logger) (*App, error) {
	grpcLis, err := net.Listen("tcp", cfg.Listen.GRPC)
	if err != nil {
		return nil, fmt.Errorf("grpc listener: %w", err)
	}
	httpLis, err := net.Listen("tcp", cfg.Listen.HTTP)
	if err != nil {
		grpcLis.Close()
		return nil, fmt.Errorf("http listener: %w", err)
	}
	adminLis, err := net.Listen("tcp", cfg.Listen.Admin)
	if err != nil {
		grpcLis.Close()
		httpLis.Close()
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	closeAll := func() { grpcLis.Close(); httpLis.Close(); adminLis.Close() }
	ctx, cancel := context.WithCancel(ctx)
	a := &App{grpcLis: grpcLis, httpLis: httpLis, adminLis: adminLis, ctx: ctx, cancel: cancel, errs: make(chan error, 3), log: log}
	a.tracing, err = tracing.Start(ctx)
	if err != nil {
		cancel()
		closeAll()
		return nil, fmt.Errorf("tracing: %w", err)
	}
	idp := &http.Client{Transport: a.tracing.Transport(idpTransport(cfg.TokenRequest))}
	a.discovery = &tokens.Discovery{HTTP: idp, Timeout: cfg.TokenRequest.Timeout, Log: log.With("component", "discovery")}
	a.discovery.Track(ctx, Issuers(cfg))
	a.metrics = metrics.New(func() tokens.CacheStats { return a.Source.Stats() })
	tier, err := a.startShared(cfg)
	if err != nil {
		cancel()
		closeAll()
		return nil, fmt.Errorf("shared cache: %w", err)
	}
	a.Source = tokens.NewSource(tokens.Options{
		Fetcher:       &tokens.Client{HTTP: idp, TLSTransport: a.mtlsTransport(cfg.TokenRequest)},
		Discovery:     a.discovery,
		Observer:      fetchLog{log: log.With("component", "tokens"), next: a.metrics},
		ExpirySkew:    cfg.Cache.ExpirySkew,
		RefreshBefore: cfg.Cache.RefreshBefore,
		MaxEntries:    cfg.Cache.MaxEntries,
		Timeout:       cfg.TokenRequest.Timeout,
		MaxInFlight:   cfg.TokenRequest.MaxInFlight,
		Shared:        tier,
		IDKey:         tokenIDKey(cfg),
		PurgeInterval: cfg.Cache.PurgeInterval,
	})
	a.Authz = authz.New(cfg, a.Source, authz.Options{Log: log.With("component", "authz"), Observer: a.metrics})
	a.status = a.newStatus()
	a.observeState()

	a.grpc = grpc.NewServer(append(authz.GRPCServerOptions(), a.tracing.ServerOptions()...)...)
	a.Authz.RegisterGRPC(a.grpc)
	// Envoy streams access logs of upstream 401s here (the shipped
	// configs' http_grpc logger): each purges the token it was sent with.
	accesslogv3.RegisterAccessLogServiceServer(a.grpc, a.Authz.AccessLogService(a.Source, a.metrics))
	a.registerHealth()
	reflection.Register(a.grpc) // so grpcurl needs no .proto files

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", a.ready)
	mux.Handle("GET /metrics", a.metrics.Handler())
	// HTTP authorization (/check/..., /forward-auth) is routed before mux,
	// which would redirect unclean original paths instead of deciding on them.
	traced := func(h http.Handler) http.Handler { return a.tracing.HTTPHandler(h, "Check") }
	a.http = &http.Server{Handler: a.Authz.HTTPHandler(mux, traced), ReadHeaderTimeout: 5 * time.Second}

	go func() { a.errs <- a.grpc.Serve(grpcLis) }()
	go func() { a.errs <- a.http.Serve(httpLis) }()
	a.serveAdmin(adminLis, cfg.Listen.Pprof)
	go a.followReadiness()
	log.Info("serving", "grpc", a.GRPCAddr(), "http", a.HTTPAddr(), "admin", a.AdminAddr(), "config", cfg.Path, "services", len(cfg.Routes.Services()))
	a.prewarm(cfg)
	logWarnings(log, cfg)
	return a, nil
}

// GRPCAddr is the address the ext_authz gRPC service listens on.
func (a *App) GRPCAddr() string { return a.grpcLis.Addr().String() }

// HTTPAddr is the address of the HTTP listener (HTTP authorization, health,
// readiness).
func (a *App) HTTPAddr() string { return a.httpLis.Addr().String() }

// Wait blocks until ctx ends or a listener fails, then stops: when ctx
// ended (SIGTERM), it first drains for drain (NOT_SERVING, checks still
// answered), then shuts down gracefully. It logs one line as it stops.
func (a *App) Wait(ctx context.Context, drain time.Duration) error {
	var err error
	select {
	case <-ctx.Done():
		a.log.Info("stopping", "cause", context.Cause(ctx).Error(), "drain", drain.String(), "grace", ShutdownGrace.String())
		err = a.drain(drain)
	case err = <-a.errs:
		a.log.Error("stopping", "cause", "listener failed", "err", err, "grace", ShutdownGrace.String())
	}
	a.Shutdown()
	return err
}

// Shutdown stops accepting, lets in-flight checks finish (bounded by
// ShutdownGrace) and stops background work.
func (a *App) Shutdown() {
	a.stopHealth()
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
	defer cancel()
	done := make(chan struct{})
	go func() { a.grpc.GracefulStop(); close(done) }()
	if err := a.http.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		a.log.Warn("http shutdown", "err", err)
	}
	a.admin.Close() // a page being rendered need not finish
	select {
	case <-done:
	case <-ctx.Done():
		a.grpc.Stop()
	}
	a.cancel()
	a.closeShared()
	if err := a.tracing.Shutdown(ctx); err != nil {
		a.log.Warn("tracing shutdown", "err", err)
	}
}

// idpTransport is the transport to token endpoints: TLS always verified
// (against tr's roots, or the system's when nil), and as many connections
// per endpoint as token requests may be in flight, all kept for reuse:
// never one new connection per request, which under a flood of misses
// would fill the local port range with TIME_WAIT sockets.
func idpTransport(tr config.TokenRequest) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxConnsPerHost = tr.MaxInFlight
	t.MaxIdleConnsPerHost = tr.MaxInFlight
	t.TLSClientConfig = &tls.Config{RootCAs: tr.RootCAs, MinVersion: tls.VersionTLS12}
	return t
}

// mtlsTransport makes the transport of each tls_client_auth certificate:
// idpTransport's settings and tracing, with the client certificate.
func (a *App) mtlsTransport(tr config.TokenRequest) func(tokens.ClientCertificate) http.RoundTripper {
	return func(cert tokens.ClientCertificate) http.RoundTripper {
		t := idpTransport(tr)
		t.TLSClientConfig.GetClientCertificate = cert
		return a.tracing.Transport(t)
	}
}

// Issuers lists the issuers whose token endpoint must be discovered.
func Issuers(cfg *config.Config) []string {
	seen := map[string]bool{}
	var out []string
	for _, svc := range cfg.Routes.Services() {
		all := []*scopes.Settings{&svc.Settings}
		for _, ep := range svc.Endpoints {
			all = append(all, &ep.Settings)
		}
		for _, s := range all {
			iss := s.TokenEndpoint.Issuer
			if s.Grant.NeedsToken() && s.TokenEndpoint.TokenURL == "" && iss != "" && !seen[iss] {
				seen[iss] = true
				out = append(out, iss)
			}
		}
	}
	return out
}
