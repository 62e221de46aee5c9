package app

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/tokenauthz/tokenauthz/authz"
	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/tokens"
)

// prewarmConcurrency bounds the token requests one prewarm makes at once.
const prewarmConcurrency = 8

// warmTarget is one token a prewarm fetches, and where the config names it.
type warmTarget struct {
	where string // service, or service/endpoint
	req   tokens.Request
}

// prewarm, with cache.prewarm on, fetches in the background every
// client-credentials token cfg names, through the Source (so from the
// shared cache when the fleet has it), so that the first checks after a
// start or reload are hits. Readiness does not wait for it; the log says
// what was prewarmed and what failed.
func (a *App) prewarm(cfg *config.Config) {
	if !a.Authz.Config().Cache.Prewarm {
		return
	}
	targets := warmTargets(cfg)
	if len(targets) == 0 {
		return
	}
	log := a.log.With("component", "prewarm")
	go func() {
		start := time.Now()
		var (
			mu     sync.Mutex
			warmed []string
			wg     sync.WaitGroup
		)
		sem := make(chan struct{}, prewarmConcurrency)
		for _, t := range targets {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				ctx, cancel := context.WithTimeout(a.ctx, 2*cfg.TokenRequest.Timeout)
				defer cancel()
				if _, err := a.Source.Token(ctx, t.req); err != nil {
					log.Warn("prewarm failed", "at", t.where, "err", err)
					return
				}
				mu.Lock()
				warmed = append(warmed, t.where)
				mu.Unlock()
			})
		}
		wg.Wait()
		log.LogAttrs(context.Background(), slog.LevelInfo, "prewarmed",
			slog.Any("at", warmed), slog.Int("tokens", len(warmed)), slog.Int("failed", len(targets)-len(warmed)),
			slog.Duration("latency", time.Since(start)))
	}()
}

// warmTargets lists the distinct client-credentials token requests of cfg:
// every service and endpoint whose grant resolves to client credentials
// without a caller's token.
func warmTargets(cfg *config.Config) []warmTarget {
	seen := map[string]bool{}
	var out []warmTarget
	for _, svc := range cfg.Routes.Services() {
		if r, ok := authz.ClientCredentialsRequest(cfg, svc.Name, &svc.Settings); ok && !seen[tokens.Key(r)] {
			seen[tokens.Key(r)] = true
			out = append(out, warmTarget{svc.Name, r})
		}
		for _, ep := range svc.Endpoints {
			if r, ok := authz.ClientCredentialsRequest(cfg, svc.Name, &ep.Settings); ok && !seen[tokens.Key(r)] {
				seen[tokens.Key(r)] = true
				out = append(out, warmTarget{svc.Name + "/" + ep.Name, r})
			}
		}
	}
	return out
}
