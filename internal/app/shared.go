package app

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"

	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/tokens"
	"github.com/tokenauthz/tokenauthz/tokens/shared"
)

// startShared connects the shared cache when cache.shared is set. Without
// it, the tier is nil and nothing of Redis is used.
func (a *App) startShared(cfg *config.Config) (tokens.Tier, error) {
	s := cfg.Cache.Shared
	if s == nil {
		return nil, nil
	}
	log := a.log.With("component", "shared-cache")
	o := shared.Options{
		Addresses: s.Addresses, Username: s.Username, Password: s.Password, DB: s.DB,
		Prefix: s.Prefix, Keys: s.Keys, Timeout: s.Timeout,
		Observer: a.metrics.Shared(), Log: log,
	}
	if s.TLS != nil {
		o.TLS = &tls.Config{RootCAs: s.TLS.RootCAs, Certificates: s.TLS.Certificates, MinVersion: tls.VersionTLS12}
	}
	c, err := shared.New(o)
	if err != nil {
		return nil, err
	}
	a.shared = c
	log.Info("shared cache on", "addresses", s.Addresses, "prefix", s.Prefix, "keys", len(s.Keys), "tls", s.TLS != nil)
	return c, nil
}

// rotateKeys gives the shared cache the keys a reload read from keys_file.
func (a *App) rotateKeys(cfg *config.Config) {
	if a.shared == nil || cfg.Cache.Shared == nil {
		return
	}
	if err := a.shared.SetKeys(cfg.Cache.Shared.Keys); err != nil {
		a.log.Error("shared cache: new keys rejected; the old ones stay", "err", err)
		return
	}
	a.log.Info("shared cache: keys reloaded", "keys", len(cfg.Cache.Shared.Keys))
}

func (a *App) closeShared() {
	if a.shared != nil {
		if err := a.shared.Close(); err != nil {
			a.log.Warn("shared cache close", "err", err)
		}
	}
}

// tokenIDKey keys the token ids Envoy's access logs carry. Replicas sharing
// a cache must name an entry alike, so that a 401 logged to any of them
// purges it: their key comes from the first cache key they started with.
// Alone, a Source draws its own (nil).
func tokenIDKey(cfg *config.Config) []byte {
	if cfg.Cache.Shared == nil || len(cfg.Cache.Shared.Keys) == 0 {
		return nil
	}
	m := hmac.New(sha256.New, cfg.Cache.Shared.Keys[0])
	m.Write([]byte("tokenauthz token id"))
	return m.Sum(nil)
}
