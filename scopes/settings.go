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
	GrantJWTBearer         Grant = "jwt_bearer"         // RFC 7523 section 2.1, assertion = caller's bearer token
)

// Grants lists every valid Grant, for validation and messages.
var Grants = []Grant{GrantNone, GrantClientCredentials, GrantTokenExchange, GrantAuto, GrantJWTBearer}

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
	return g == GrantClientCredentials || g == GrantTokenExchange || g == GrantAuto || g == GrantJWTBearer
}

// NeedsSubject reports whether the grant sends the caller's bearer token
// (as subject_token or assertion), so a request without one is a 401.
func (g Grant) NeedsSubject() bool {
	return g == GrantTokenExchange || g == GrantJWTBearer
}

// ClientAuth is how the client authenticates to the token endpoint.
type ClientAuth string

const (
	ClientAuthBasic           ClientAuth = "basic"            // RFC 6749 2.3.1 HTTP Basic, form-encoded id:secret
	ClientAuthPost            ClientAuth = "post"             // client_id and client_secret in the form body
	ClientAuthPrivateKeyJWT   ClientAuth = "private_key_jwt"  // RFC 7523 2.2: an assertion signed with client_key_file
	ClientAuthClientAssertion ClientAuth = "client_assertion" // RFC 7521 4.2: the assertion in client_assertion_file
	ClientAuthTLS             ClientAuth = "tls_client_auth"  // RFC 8705 2: the certificate in the TLS handshake
	ClientAuthNone            ClientAuth = "none"             // public client: client_id only, when set
)

// ClientAuths lists every valid ClientAuth.
var ClientAuths = []ClientAuth{ClientAuthBasic, ClientAuthPost, ClientAuthPrivateKeyJWT,
	ClientAuthClientAssertion, ClientAuthTLS, ClientAuthNone}

// NeedsSecret reports whether the method sends a client secret.
func (a ClientAuth) NeedsSecret() bool { return a == ClientAuthBasic || a == ClientAuthPost }

// Client assertion types (RFC 7523 section 2.2; the SPIFFE JWT-SVID profile
// of draft-ietf-oauth-spiffe-client-auth).
const (
	AssertionTypeJWTBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	AssertionTypeJWTSPIFFE = "urn:ietf:params:oauth:client-assertion-type:jwt-spiffe"
)

// AssertionTypes lists every valid client_assertion_type.
var AssertionTypes = []string{AssertionTypeJWTBearer, AssertionTypeJWTSPIFFE}

// Defaults that apply when no level sets a key.
const (
	DefaultSubjectTokenType    = "urn:ietf:params:oauth:token-type:access_token"
	DefaultHeader              = "authorization"
	DefaultClientAssertionType = AssertionTypeJWTBearer
	DefaultActorTokenType      = "urn:ietf:params:oauth:token-type:jwt"
	// DefaultHeaderFormat is the injected header's value; TokenPlaceholder
	// stands for the access token.
	DefaultHeaderFormat = "Bearer " + TokenPlaceholder
	TokenPlaceholder    = "{token}"
)

// Param is one extra form parameter of a token request (token_params).
type Param struct{ Name, Value string }

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

	// Client authentication without shared secrets; files are resolved paths.
	ClientKeyFile           *string
	ClientKeyID             *string
	ClientCertFile          *string
	ClientAssertionAlg      *string
	ClientAssertionAudience *string
	ClientAssertionFile     *string
	ClientAssertionType     *string
	TokenParams             []Param // sorted by name; nil: unset; empty non-nil: explicitly none
	ActorTokenFile          *string
	ActorTokenType          *string
	HeaderFormat            *string
	Callers                 []string // nil: unset; empty non-nil: explicitly nobody
	RemoveHeaders           []string // nil: unset; empty non-nil: explicitly none
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

	ClientKeyFile           string
	ClientKeyID             string
	ClientCertFile          string
	ClientAssertionAlg      string // "": from the key
	ClientAssertionAudience string // "": the token endpoint URL
	ClientAssertionFile     string
	ClientAssertionType     string
	TokenParams             []Param // sorted by name
	ActorTokenFile          string
	ActorTokenType          string
	HeaderFormat            string
	// Callers lists the principals allowed to obtain the token (see
	// CallerAllowed); nil means anyone.
	Callers []string
	// RemoveHeaders are the request headers dropped before the request goes
	// upstream; nil (no level set remove_headers) means the default: the
	// caller's own Authorization when the token goes in another header.
	RemoveHeaders []string
}

// HeadersToRemove is RemoveHeaders, or its default when no level set it:
// when the token goes in a header other than Authorization, the caller's
// Authorization would otherwise travel upstream beside it.
func (s *Settings) HeadersToRemove() []string {
	if s.RemoveHeaders != nil {
		return s.RemoveHeaders
	}
	if s.Header != DefaultHeader {
		return removeAuthorization
	}
	return nil
}

var removeAuthorization = []string{DefaultHeader}

// Root settles the defaults layer into Settings, filling built-in defaults.
func Root(l Layer) Settings {
	base := Settings{
		ClientAuth:          ClientAuthBasic,
		Grant:               GrantNone,
		SubjectTokenType:    DefaultSubjectTokenType,
		Header:              DefaultHeader,
		ClientAssertionType: DefaultClientAssertionType,
		ActorTokenType:      DefaultActorTokenType,
		HeaderFormat:        DefaultHeaderFormat,
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
	pick(&s.ClientKeyFile, child.ClientKeyFile)
	pick(&s.ClientKeyID, child.ClientKeyID)
	pick(&s.ClientCertFile, child.ClientCertFile)
	pick(&s.ClientAssertionAlg, child.ClientAssertionAlg)
	pick(&s.ClientAssertionAudience, child.ClientAssertionAudience)
	pick(&s.ClientAssertionFile, child.ClientAssertionFile)
	pick(&s.ClientAssertionType, child.ClientAssertionType)
	if child.TokenParams != nil {
		s.TokenParams = slices.Clone(child.TokenParams)
	}
	pick(&s.ActorTokenFile, child.ActorTokenFile)
	pick(&s.ActorTokenType, child.ActorTokenType)
	pick(&s.HeaderFormat, child.HeaderFormat)
	if child.Callers != nil {
		s.Callers = slices.Clone(child.Callers)
	}
	if child.RemoveHeaders != nil {
		s.RemoveHeaders = slices.Clone(child.RemoveHeaders)
	}
	return s
}

func pick[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}
