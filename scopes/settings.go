// Package scopes holds tokenauthz's routing model: backend services with
// endpoints, the auth settings each level inherits from its parent, and the
// matching that turns a request's service name, host, path and method into the
// settings to use. It is pure logic: no I/O, no gRPC, HTTP or Envoy types.
package scopes

import "slices"

// Grant is how a token for a backend is obtained.
type Grant string

const (
	GrantNone              Grant = "none"               // allow, inject nothing
	GrantClientCredentials Grant = "client_credentials" // RFC 6749 section 4.4
	GrantTokenExchange     Grant = "token_exchange"     // RFC 8693, subject = caller's bearer token
	GrantAuto              Grant = "auto"               // token exchange with a caller token, else client credentials
)

// Grants lists every valid Grant, for validation and messages.
var Grants = []Grant{GrantNone, GrantClientCredentials, GrantTokenExchange, GrantAuto}

// Effective resolves auto against whether the caller presented a bearer token.
func (g Grant) Effective(hasCallerToken bool) Grant {
	if g != GrantAuto {
		return g
	}
	if hasCallerToken {
		return GrantTokenExchange
	}
	return GrantClientCredentials
}

// NeedsToken reports whether the grant fetches a token (and so needs credentials).
func (g Grant) NeedsToken() bool {
	return g == GrantClientCredentials || g == GrantTokenExchange || g == GrantAuto
}

// ClientAuth is how the client authenticates to the token endpoint.
type ClientAuth string

const (
	ClientAuthBasic ClientAuth = "basic" // RFC 6749 2.3.1 HTTP Basic, form-encoded id:secret
	ClientAuthPost  ClientAuth = "post"  // client_id and client_secret in the form body
)

// ClientAuths lists every valid ClientAuth.
var ClientAuths = []ClientAuth{ClientAuthBasic, ClientAuthPost}

// Defaults that apply when no level sets a key.
const (
	DefaultSubjectTokenType = "urn:ietf:params:oauth:token-type:access_token"
	DefaultHeader           = "authorization"
)

// TokenEndpoint is one setting made of two keys: issuer (found by OIDC
// discovery) and token_url (used as is). The nearest level that sets either
// wins for both.
type TokenEndpoint struct {
	Issuer   string
	TokenURL string
}

// Secret is one setting made of client_secret and client_secret_file. Value is
// what the loader read; File and Key (the key path that set it) are kept for
// messages and reloads.
type Secret struct {
	Value string
	File  string
	Key   string
}

// Layer is the auth keys set at one level (defaults, service or endpoint).
// A nil field is unset and inherits from the parent level.
type Layer struct {
	TokenEndpoint      *TokenEndpoint
	ClientID           *string
	Secret             *Secret
	ClientAuth         *ClientAuth
	Grant              *Grant
	Scope              []string // nil: unset; empty non-nil: explicitly no scope
	Audience           *string
	Resource           *string
	SubjectTokenType   *string
	RequestedTokenType *string
	Header             *string
}

// Settings are the auth settings in effect at one level after inheritance.
type Settings struct {
	TokenEndpoint      TokenEndpoint
	ClientID           string
	Secret             Secret
	ClientAuth         ClientAuth
	Grant              Grant
	Scope              []string
	Audience           string
	Resource           string
	SubjectTokenType   string
	RequestedTokenType string
	Header             string
}

// Root settles the defaults layer into Settings, filling built-in defaults.
func Root(l Layer) Settings {
	base := Settings{
		ClientAuth:       ClientAuthBasic,
		Grant:            GrantNone,
		SubjectTokenType: DefaultSubjectTokenType,
		Header:           DefaultHeader,
	}
	return base.Inherit(l)
}

// Inherit returns s overridden by every key the child layer sets: the nearest
// level wins, whole value (scope lists are replaced, never merged).
func (s Settings) Inherit(child Layer) Settings {
	pick(&s.TokenEndpoint, child.TokenEndpoint)
	pick(&s.ClientID, child.ClientID)
	pick(&s.Secret, child.Secret)
	pick(&s.ClientAuth, child.ClientAuth)
	pick(&s.Grant, child.Grant)
	if child.Scope != nil {
		s.Scope = slices.Clone(child.Scope)
	}
	pick(&s.Audience, child.Audience)
	pick(&s.Resource, child.Resource)
	pick(&s.SubjectTokenType, child.SubjectTokenType)
	pick(&s.RequestedTokenType, child.RequestedTokenType)
	pick(&s.Header, child.Header)
	return s
}

func pick[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}
