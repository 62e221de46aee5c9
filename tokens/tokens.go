// Package tokens obtains OAuth2 access tokens for backends and caches them:
// client credentials (RFC 6749 section 4.4) and token exchange (RFC 8693),
// against a token endpoint given directly or found by OIDC discovery.
//
// Client sends one request; Source puts a cache in front of it, keyed by
// Key, with single-flight fetches, refresh-ahead and failure backoff.
package tokens

import (
	"errors"
	"time"
)

// Grant types sent to the token endpoint.
const (
	GrantClientCredentials = "client_credentials"
	GrantTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange"
)

// GrantName is the short name of a grant type, as metrics and logs show
// it: client_credentials, token_exchange (not the RFC 8693 URN).
func GrantName(grantType string) string {
	if grantType == GrantTokenExchange {
		return "token_exchange"
	}
	return grantType
}

// Request is one token request, fully resolved: everything that makes the
// token differ is here, so the cache key is derived from it alone.
type Request struct {
	Service            string // the configured service asking: a metrics label, not part of the key
	Issuer             string // used for OIDC discovery when TokenURL is empty
	TokenURL           string
	ClientID           string
	ClientSecret       string
	ClientAuth         string // "basic" or "post"
	GrantType          string // GrantClientCredentials or GrantTokenExchange
	Scope              []string
	Audience           string
	Resource           string
	SubjectToken       string // token exchange only
	SubjectTokenType   string
	RequestedTokenType string
}

// Token is an access token as the token endpoint issued it.
type Token struct {
	AccessToken string
	TokenType   string
	Scope       string
	Expiry      time.Time // zero: the endpoint sent no expires_in; the fetch time if it sent <= 0
	bearer      string    // "Bearer " + AccessToken, built once by the client
}

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
