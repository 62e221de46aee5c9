// Package authz is tokenauthz's decision point: it turns an Envoy CheckRequest
// (or an HTTP authorization request) into an Input, plans it against the
// configuration, obtains the token and renders the Decision back.
package authz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/scopes"
	"github.com/tokenauthz/tokenauthz/tokens"
)

// TokenSource is what the server needs from the token layer.
type TokenSource interface {
	Token(ctx context.Context, r tokens.Request) (tokens.Token, error)
}

// Observer is told about every decision (metrics).
type Observer interface {
	ObserveCheck(d Decision, elapsed time.Duration)
}

// Options are a Server's optional parts.
type Options struct {
	Log      *slog.Logger // default: discard
	Observer Observer     // default: none
}

// Server answers ext_authz checks. Its configuration can be swapped while it
// serves (Reload); each check uses one configuration throughout.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	cfg    atomic.Pointer[config.Config]
	tokens TokenSource
	log    *slog.Logger
	obs    Observer
}

var _ authv3.AuthorizationServer = (*Server)(nil)

// New returns a server deciding under cfg and fetching tokens from src.
func New(cfg *config.Config, src TokenSource, opts Options) *Server {
	s := &Server{tokens: src, log: opts.Log, obs: opts.Observer}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.cfg.Store(cfg)
	return s
}

// Reload makes cfg the configuration for checks that start from now on.
func (s *Server) Reload(cfg *config.Config) { s.cfg.Store(cfg) }

// Config returns the configuration in effect.
func (s *Server) Config() *config.Config { return s.cfg.Load() }

// Check implements envoy.service.auth.v3.Authorization. Every outcome,
// denials included, is a CheckResponse; gRPC errors are never decisions.
// The gRPC service RegisterGRPC registers runs the same check on the
// fields its codec decodes.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	var f checkFields
	f.fromProto(req)
	return s.check(ctx, &f).msg, nil
}

func (s *Server) check(ctx context.Context, f *checkFields) *rendered {
	in, ok := f.input()
	if !ok {
		return render(s.finish(deny(ReasonMalformed, in, "check request has no HTTP attributes"), time.Now()))
	}
	return render(s.Decide(ctx, in))
}

// Decide runs one check: plan the request, get the token, build the decision.
func (s *Server) Decide(ctx context.Context, in Input) Decision {
	start := time.Now()
	p, err := PlanFor(s.cfg.Load(), in)
	if err != nil {
		return s.finish(refusal(ctx, in, p, err), start)
	}
	if !p.Grant.NeedsToken() {
		return s.finish(named(allow(ReasonNoGrant, in), p), start)
	}
	tok, err := s.tokens.Token(ctx, p.Request)
	if err != nil {
		err = fmt.Errorf("token request for service %q: %w", p.Match.Service.Name, err)
		return s.finish(refusal(ctx, in, p, err), start)
	}
	return s.finish(injected(in, p, tok, start), start)
}

// refusal converts an error to its decision: the one place errors become statuses.
func refusal(ctx context.Context, in Input, p Plan, err error) Decision {
	reason := reasonFor(ctx, err)
	if reason == ReasonUnmatchedAllowed {
		return allow(reason, in)
	}
	return named(deny(reason, in, err.Error()), p)
}

func reasonFor(ctx context.Context, err error) Reason {
	switch {
	case errors.Is(err, errUnmatched):
		return ReasonUnmatchedAllowed
	case errors.Is(err, errMalformed):
		return ReasonMalformed
	case errors.Is(err, scopes.ErrUnknownService), errors.Is(err, scopes.ErrUnknownEndpoint):
		return ReasonUnknownService
	case errors.Is(err, scopes.ErrNoMatch):
		return ReasonNoMatch
	case errors.Is(err, errCaller):
		return ReasonCallerNotAllowed
	case errors.Is(err, errMissingSubject):
		return ReasonMissingSubject
	case errors.Is(ctx.Err(), context.Canceled):
		return ReasonCanceled
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return ReasonTimeout
	case errors.Is(err, tokens.ErrSubjectRejected):
		return ReasonSubjectRejected
	case errors.Is(err, tokens.ErrClientRejected):
		return ReasonClientRejected
	case errors.Is(err, tokens.ErrUnavailable):
		return ReasonUnavailable
	}
	return ReasonInternal
}

// named adds to d what the plan chose: service, endpoint, grant and the
// request headers its settings drop.
func named(d Decision, p Plan) Decision {
	if p.Match.Service != nil {
		d.Service, d.Endpoint = p.Match.Service.Name, p.Match.EndpointName()
		d.Grant, d.RemoveHeaders = string(p.Grant), p.Settings.HeadersToRemove()
	}
	return d
}

// finish reports the decision: to the observer, and to the log (denials at
// info, allows at debug: a JSON line per check would cost more CPU than the
// rest of a cache hit).
func (s *Server) finish(d Decision, start time.Time) Decision {
	elapsed := time.Since(start)
	if s.obs != nil {
		s.obs.ObserveCheck(d, elapsed)
	}
	level := slog.LevelInfo
	if d.Allowed() {
		level = slog.LevelDebug
	}
	if s.log.Enabled(context.Background(), level) {
		s.log.LogAttrs(context.Background(), level, "check",
			slog.String("request_id", d.RequestID),
			slog.String("service", d.Service),
			slog.String("endpoint", d.Endpoint),
			slog.Bool("allowed", d.Allowed()),
			slog.String("reason", string(d.Reason)),
			slog.String("message", d.Message),
			slog.Float64("latency_ms", float64(elapsed.Microseconds())/1000), // milliseconds, to the microsecond
		)
	}
	return d
}

// Preview is the decision a plan leads to before any token is fetched: the
// denial when planning failed, else an allow. It backs `tokenauthz explain`.
func Preview(p Plan, in Input, err error) Decision {
	if err != nil {
		return refusal(context.Background(), in, p, err)
	}
	if p.Grant.NeedsToken() {
		return named(allow(ReasonTokenInjected, in), p)
	}
	return named(allow(ReasonNoGrant, in), p)
}
