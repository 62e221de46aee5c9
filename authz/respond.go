package authz

import (
	"strings"
	"time"

	"github.com/tokenauthz/tokenauthz/scopes"
	"github.com/tokenauthz/tokenauthz/tokens"
)

// hit is what a cache entry's token renders to at one settings level: the
// header value, and the CheckResponse of a hit, whose token_expires_in
// holds for one second.
type hit struct {
	settings  *scopes.Settings
	value     string
	expiresIn int64
	resp      *rendered
}

// injected is the decision to inject tok under p. Everything an allow
// renders (header, value, headers to remove, dynamic metadata) is fixed by
// the token's cache entry and p's settings level, but for token_expires_in,
// which changes each second: so it is built once and kept in the entry's
// memo, and every hit in that second shares one CheckResponse, encoded
// once. A response is never changed once built, so concurrent sends may
// share it.
func injected(in Input, p Plan, tok tokens.Token, now time.Time) Decision {
	d := named(allow(ReasonTokenInjected, in), p)
	d.Header, d.Cache, d.TokenID, d.ExpiresIn = p.Settings.Header, tok.Cache, tok.ID, expiresIn(tok, now)
	memo := tok.Memo()
	if memo == nil { // a token used once, not cached
		d.Value = headerValue(p.Settings, tok)
		return d
	}
	h, _ := memo.Load().(*hit)
	if h == nil || h.settings != p.Settings || h.expiresIn != d.ExpiresIn {
		value := headerValue(p.Settings, tok)
		if h != nil && h.settings == p.Settings {
			value = h.value
		}
		asHit := d
		asHit.Value, asHit.Cache = value, tokens.CacheHit
		h = &hit{settings: p.Settings, value: value, expiresIn: d.ExpiresIn, resp: prerender(buildResponse(asHit))}
		memo.Store(h)
	}
	d.Value = h.value
	if d.Cache == tokens.CacheHit {
		d.resp = h.resp
	}
	return d
}

// headerValue is header_format with the token in it; the default format's
// value comes prebuilt with the token.
func headerValue(s *scopes.Settings, tok tokens.Token) string {
	if s.HeaderFormat == scopes.DefaultHeaderFormat {
		return tok.Bearer()
	}
	return strings.Replace(s.HeaderFormat, scopes.TokenPlaceholder, tok.AccessToken, 1)
}

// expiresIn is how many whole seconds tok has left at now; -1 when the
// token endpoint sent no expires_in.
func expiresIn(tok tokens.Token, now time.Time) int64 {
	if tok.Expiry.IsZero() {
		return -1
	}
	return max(0, int64(tok.Expiry.Sub(now)/time.Second))
}
