// Package tokens obtains OAuth2 access tokens for backends and caches them:
// client credentials (RFC 6749 section 4.4), token exchange (RFC 8693) and
// the JWT bearer grant (RFC 7523 section 2.1), against a token endpoint given
// directly or found by OIDC discovery.
//
// The client authenticates with one ClientAuth, chosen when the
// configuration is built: a secret (basic, post), an assertion it signs
// (private_key_jwt) or reads from a file (client_assertion), a TLS client
// certificate (tls_client_auth), or nothing (none).
//
// Client sends one request; Source puts a cache in front of it, keyed by
// Key, with single-flight fetches, refresh-ahead and failure backoff.
package tokens

import (
	"errors"
	"sync/atomic"
	"time"
)

// Grant types sent to the token endpoint.
const (
	GrantClientCredentials = "client_credentials"
	GrantTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange"
	GrantJWTBearer         = "urn:ietf:params:oauth:grant-type:jwt-bearer"
)

// GrantName is the short name of a grant type, as metrics and logs show
// it: client_credentials, token_exchange (not the RFC 8693 URN).
func GrantName(grantType string) string {
	switch grantType {
	case GrantTokenExchange:
		return "token_exchange"
	case GrantJWTBearer:
		return "jwt_bearer"
	}
	return grantType
}

// Request is one token request, fully resolved: everything that makes the
// token differ is here, so the cache key is derived from it alone.
type Request struct {
	Service  string // the configured service asking: a metrics label, not part of the key
	Issuer   string // used for OIDC discovery when TokenURL is empty
	TokenURL string
	ClientID string
	// Auth authenticates the client; nil sends no credentials (as NoClientAuth).
	Auth      ClientAuth
	GrantType string // GrantClientCredentials, GrantTokenExchange or GrantJWTBearer
	Scope     []string
	Audience  string
	Resource  string
	// SubjectToken is the caller's token: the subject_token of an exchange,
	// the assertion of the JWT bearer grant.
	SubjectToken       string
	SubjectTokenType   string // token exchange only
	RequestedTokenType string // token exchange only
	// Actor, when set, is sent as the actor_token of an exchange (RFC 8693
	// section 2.1) with ActorTokenType, read from its file at each fetch.
	Actor          *TokenFile
	ActorTokenType string
	// Params are extra form parameters (token_params), sorted by name.
	Params []Param
}

// Param is one extra form parameter of a token request.
type Param struct{ Name, Value string }

// sendsSubject reports whether the grant sends SubjectToken.
func (r Request) sendsSubject() bool {
	return r.GrantType == GrantTokenExchange || r.GrantType == GrantJWTBearer
}

// Token is an access token as the token endpoint issued it, and, from a
// Source, how it was found.
type Token struct {
	AccessToken string
	TokenType   string
	Scope       string
	Expiry      time.Time // zero: the endpoint sent no expires_in; the fetch time if it sent <= 0
	// ID names the cache entry holding the token (a short keyed hash of
	// its key, never of the token), for Envoy's access logs and Purge; ""
	// for a token that is not cached.
	ID string
	// Cache says how Source found it: CacheHit, CacheRefresh or CacheMiss.
	Cache  string
	bearer string // "Bearer " + AccessToken, built once by the client
	memo   *Memo  // the entry's, nil for a token not cached
}

// How Source.Token found a token (Token.Cache).
const (
	CacheHit     = "hit"     // served from the cache
	CacheRefresh = "refresh" // served from the cache; this request started its background refresh
	CacheMiss    = "miss"    // waited for a token request
)

// Memo is a cache entry's slot for what a caller derives from its token
// (a rendered response), so that it is built once per entry instead of once
// per use. Safe for concurrent use; store values of one type.
type Memo struct{ v atomic.Value }

// Load returns the value last stored, or nil.
func (m *Memo) Load() any { return m.v.Load() }

// Store replaces the value.
func (m *Memo) Store(v any) { m.v.Store(v) }

// Memo is the slot of the cache entry t was served from; nil when t is not
// cached (a token that arrived expired is used once).
func (t Token) Memo() *Memo { return t.memo }

// Bearer is the Authorization value that sends the token (RFC 6750):
// "Bearer <access_token>", whatever case the endpoint wrote token_type in.
// Tokens from Client carry it prebuilt, so a cached token is sent on every
// check without copying it again.
func (t Token) Bearer() string {
	if t.bearer != "" {
		return t.bearer
	}
	return "Bearer " + t.AccessToken
}

// Failure classes of a token request; an *Error wraps exactly one of them.
var (
	// ErrSubjectRejected: the IdP refused the caller's subject token (invalid_grant on an exchange).
	ErrSubjectRejected = errors.New("subject token rejected")
	// ErrClientRejected: the IdP refused our own client configuration
	// (invalid_client, invalid_scope, unauthorized_client, ...).
	ErrClientRejected = errors.New("client configuration rejected")
	// ErrUnavailable: the token endpoint could not be reached or answered
	// unusably (timeout, 5xx, 429, garbage, discovery not done yet).
	ErrUnavailable = errors.New("token endpoint unavailable")
)
