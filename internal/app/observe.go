package app

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/internal/metrics"
	"github.com/tokenauthz/tokenauthz/tokens"
)

// observeState exports the state metrics: readiness by notReady's rule,
// and each issuer of the current configuration, read at each scrape. The
// configuration the app started with counts as the first load.
func (a *App) observeState() {
	a.metrics.ObserveLoad()
	a.metrics.WatchState(metrics.State{
		Ready:   func() bool { return a.notReady() == "" },
		Issuers: a.issuers,
	})
}

// issuers are the issuers of the configuration in effect, each with
// whether its token endpoint is discovered.
func (a *App) issuers() []metrics.Issuer {
	issuers := Issuers(a.Authz.Config())
	pending := map[string]bool{}
	for _, p := range a.discovery.Pending(issuers) {
		pending[p.Issuer] = true
	}
	out := make([]metrics.Issuer, len(issuers))
	for i, iss := range issuers {
		out[i] = metrics.Issuer{URL: iss, Discovered: !pending[iss]}
	}
	return out
}

// logWarnings logs each warning of a configuration just loaded.
func logWarnings(log *slog.Logger, cfg *config.Config) {
	for _, w := range cfg.Warnings {
		log.Warn("config warning", "config", cfg.Path, "warning", w)
	}
}

// fetchLog logs every token request sent at info (they are rare next to
// checks, and the first thing to look at when checks are denied), and one
// not sent at debug (in a flood of bogus tokens they are one per check, and
// each check's denial is logged already); then passes it on.
type fetchLog struct {
	log  *slog.Logger
	next tokens.Observer
}

func (f fetchLog) ObserveFetch(r tokens.Request, outcome string, elapsed time.Duration) {
	f.log.LogAttrs(context.Background(), slog.LevelInfo, "token request",
		slog.String("service", r.Service),
		slog.String("grant", tokens.GrantName(r.GrantType)),
		slog.String("client_id", r.ClientID),
		slog.String("scope", strings.Join(r.Scope, " ")),
		slog.String("outcome", outcome),
		slog.Float64("latency_ms", float64(elapsed.Microseconds())/1000),
	)
	f.next.ObserveFetch(r, outcome, elapsed)
}

func (f fetchLog) ObserveNotSent(r tokens.Request, reason string) {
	if f.log.Enabled(context.Background(), slog.LevelDebug) {
		f.log.LogAttrs(context.Background(), slog.LevelDebug, "token request not sent",
			slog.String("service", r.Service),
			slog.String("grant", tokens.GrantName(r.GrantType)),
			slog.String("client_id", r.ClientID),
			slog.String("reason", reason),
		)
	}
	f.next.ObserveNotSent(r, reason)
}
