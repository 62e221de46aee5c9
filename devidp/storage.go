package devidp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// storage is a minimal op.Storage: static confidential clients, one RSA
// signing key, stateless JWT access tokens. It supports the
// client_credentials and token-exchange grants only; the browser flows
// (authorization code, refresh, device) are refused.
type storage struct {
	clients    map[string]Client
	ttl        time.Duration
	signingKey signingKey
}

var (
	_ op.Storage                            = (*storage)(nil)
	_ op.ClientCredentialsStorage           = (*storage)(nil)
	_ op.TokenExchangeStorage               = (*storage)(nil)
	_ op.CanGetPrivateClaimsFromRequest     = (*storage)(nil)
	_ op.TokenExchangeTokensVerifierStorage = (*storage)(nil)
)

var errUnsupported = errors.New("devidp: not supported")

func newStorage(clients []Client, ttl time.Duration, key *rsa.PrivateKey) *storage {
	s := &storage{
		clients:    make(map[string]Client, len(clients)),
		ttl:        ttl,
		signingKey: signingKey{id: rand.Text(), key: key},
	}
	for _, c := range clients {
		s.clients[c.ID] = c
	}
	return s
}

// authenticate checks a client's secret in constant time. Its error is an
// invalid_client that [server.VerifyClient] answers with 401.
func (s *storage) authenticate(clientID, secret string) (*opClient, error) {
	c, ok := s.clients[clientID]
	if !ok || c.Secret == "" || subtle.ConstantTimeCompare([]byte(c.Secret), []byte(secret)) != 1 {
		return nil, oidc.ErrInvalidClient().WithDescription("invalid client_id / client_secret")
	}
	return &opClient{id: c.ID}, nil
}

// --- clients and keys

func (s *storage) GetClientByClientID(_ context.Context, clientID string) (op.Client, error) {
	if _, ok := s.clients[clientID]; !ok {
		return nil, oidc.ErrInvalidClient().WithDescription("unknown client")
	}
	return &opClient{id: clientID}, nil
}

func (s *storage) AuthorizeClientIDSecret(_ context.Context, clientID, clientSecret string) error {
	_, err := s.authenticate(clientID, clientSecret)
	return err
}

func (s *storage) ClientCredentials(_ context.Context, clientID, clientSecret string) (op.Client, error) {
	return s.authenticate(clientID, clientSecret)
}

func (s *storage) SigningKey(context.Context) (op.SigningKey, error) { return s.signingKey, nil }

func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *storage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{publicKey{id: s.signingKey.id, key: &s.signingKey.key.PublicKey}}, nil
}

func (s *storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errUnsupported // no JWT profile client keys
}

// --- tokens

// ClientCredentialsTokenRequest is only reached through the library's own
// handler; [server.ClientCredentialsExchange] builds its request itself so it
// can carry the requested audience.
func (s *storage) ClientCredentialsTokenRequest(_ context.Context, clientID string, scopes []string) (op.TokenRequest, error) {
	return &tokenRequest{subject: clientID, scopes: scopes}, nil
}

// CreateAccessToken only names the token and sets its expiry: access tokens
// are JWTs, so nothing is stored.
func (s *storage) CreateAccessToken(context.Context, op.TokenRequest) (string, time.Time, error) {
	return rand.Text(), time.Now().Add(s.ttl), nil
}

// GetPrivateClaimsFromRequest puts the granted scopes in the access token;
// the library itself sets no scope claim.
func (s *storage) GetPrivateClaimsFromRequest(_ context.Context, req op.TokenRequest, _ []string) (map[string]any, error) {
	return scopeClaims(req.GetScopes()), nil
}

func (s *storage) GetPrivateClaimsFromScopes(_ context.Context, _, _ string, scopes []string) (map[string]any, error) {
	return scopeClaims(scopes), nil
}

func scopeClaims(scopes []string) map[string]any {
	if len(scopes) == 0 {
		return nil
	}
	return map[string]any{"scope": strings.Join(scopes, " ")}
}

func (s *storage) ValidateJWTProfileScopes(_ context.Context, _ string, scopes []string) ([]string, error) {
	return scopes, nil
}

// --- token exchange (RFC 8693)

// ValidateTokenExchangeRequest accepts any verified subject token of any
// subject: the library has already checked the token's signature, issuer and
// expiry (and [server.TokenExchange] before it, to answer invalid_grant). The
// example storage in zitadel/oidc refuses service-user subjects and requires
// an actor token; the broker exchanges a user's access token, as a
// confidential client, without one. Requested scopes and audience are granted
// as asked. Only access tokens are issued.
func (s *storage) ValidateTokenExchangeRequest(_ context.Context, req op.TokenExchangeRequest) error {
	if req.GetExchangeSubject() == "" {
		return oidc.ErrInvalidGrant().WithDescription("subject_token has no subject")
	}
	switch req.GetRequestedTokenType() {
	case "":
		req.SetRequestedTokenType(oidc.AccessTokenType)
	case oidc.AccessTokenType:
	default:
		return oidc.ErrInvalidRequest().WithDescription("requested_token_type %s is not supported: only access tokens are issued", req.GetRequestedTokenType())
	}
	return nil
}

func (s *storage) CreateTokenExchangeRequest(context.Context, op.TokenExchangeRequest) error {
	return nil // nothing to keep: the IdP records what the token endpoint issued
}

// GetPrivateClaimsFromTokenExchangeRequest adds to the scopes the "act"
// claim of a delegation (RFC 8693 section 4.1): the actor token's subject.
func (s *storage) GetPrivateClaimsFromTokenExchangeRequest(_ context.Context, req op.TokenExchangeRequest) (map[string]any, error) {
	claims := scopeClaims(req.GetScopes())
	if actor := req.GetExchangeActor(); actor != "" {
		if claims == nil {
			claims = map[string]any{}
		}
		claims["act"] = map[string]any{"sub": actor}
	}
	return claims, nil
}

// VerifyExchangeActorToken accepts an actor_token of type jwt signed by this
// provider and not expired (tokens of type access_token the library
// verifies itself), and names its subject as the actor.
func (s *storage) VerifyExchangeActorToken(_ context.Context, token string, tokenType oidc.TokenType) (string, string, map[string]any, error) {
	if tokenType != oidc.JWTTokenType {
		return "", "", nil, errUnsupported
	}
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return "", "", nil, err
	}
	payload, err := jws.Verify(&s.signingKey.key.PublicKey)
	if err != nil {
		return "", "", nil, err
	}
	var claims struct {
		Sub string `json:"sub"`
		Exp int64  `json:"exp"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || claims.Sub == "" || time.Now().Unix() >= claims.Exp {
		return "", "", nil, errors.New("devidp: actor token without subject, or expired")
	}
	return token, claims.Sub, nil, nil
}

// VerifyExchangeSubjectToken refuses: subject tokens are access tokens,
// which the library verifies.
func (s *storage) VerifyExchangeSubjectToken(context.Context, string, oidc.TokenType) (string, string, map[string]any, error) {
	return "", "", nil, errUnsupported
}

func (s *storage) SetUserinfoFromTokenExchangeRequest(_ context.Context, info *oidc.UserInfo, req op.TokenExchangeRequest) error {
	info.Subject = req.GetSubject()
	return nil
}

// --- userinfo and introspection: the subject only, there are no profiles

func (s *storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

func (s *storage) SetUserinfoFromToken(_ context.Context, info *oidc.UserInfo, _, subject, _ string) error {
	info.Subject = subject
	return nil
}

func (s *storage) SetIntrospectionFromToken(_ context.Context, resp *oidc.IntrospectionResponse, _, subject, clientID string) error {
	resp.Subject = subject
	resp.ClientID = clientID
	return nil
}

// --- browser flows and refresh tokens: refused

func (s *storage) CreateAuthRequest(context.Context, *oidc.AuthRequest, string) (op.AuthRequest, error) {
	return nil, oidc.ErrRequestNotSupported().WithDescription("devidp supports no browser flow")
}

func (s *storage) AuthRequestByID(context.Context, string) (op.AuthRequest, error) {
	return nil, errUnsupported
}

func (s *storage) AuthRequestByCode(context.Context, string) (op.AuthRequest, error) {
	return nil, oidc.ErrInvalidGrant().WithDescription("devidp issues no codes")
}

func (s *storage) SaveAuthCode(context.Context, string, string) error { return errUnsupported }

func (s *storage) DeleteAuthRequest(context.Context, string) error { return nil }

func (s *storage) CreateAccessAndRefreshTokens(context.Context, op.TokenRequest, string) (string, string, time.Time, error) {
	return "", "", time.Time{}, oidc.ErrUnsupportedGrantType().WithDescription("devidp issues no refresh tokens")
}

func (s *storage) TokenRequestByRefreshToken(context.Context, string) (op.RefreshTokenRequest, error) {
	return nil, oidc.ErrInvalidGrant().WithDescription("devidp issues no refresh tokens")
}

func (s *storage) TerminateSession(context.Context, string, string) error { return nil }

func (s *storage) RevokeToken(context.Context, string, string, string) *oidc.Error {
	return oidc.ErrRequestNotSupported().WithDescription("devidp cannot revoke stateless tokens")
}

func (s *storage) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

func (s *storage) Health(context.Context) error { return nil }

// tokenRequest is a client-credentials request: the client is the subject.
type tokenRequest struct {
	subject  string
	audience []string
	scopes   []string
}

func (r *tokenRequest) GetSubject() string    { return r.subject }
func (r *tokenRequest) GetAudience() []string { return r.audience }
func (r *tokenRequest) GetScopes() []string   { return r.scopes }

type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k signingKey) Key() any                                    { return k.key }
func (k signingKey) ID() string                                  { return k.id }

type publicKey struct {
	id  string
	key *rsa.PublicKey
}

func (k publicKey) ID() string                         { return k.id }
func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return k.key }

// opClient is a registered confidential client as the library sees it.
type opClient struct{ id string }

var _ op.Client = (*opClient)(nil)

func (c *opClient) GetID() string                       { return c.id }
func (c *opClient) RedirectURIs() []string              { return nil }
func (c *opClient) PostLogoutRedirectURIs() []string    { return nil }
func (c *opClient) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }

// AuthMethod is basic, but the library checks the secret the same way
// whether it came in the Authorization header or the form, so both
// client_secret_basic and client_secret_post work.
func (c *opClient) AuthMethod() oidc.AuthMethod          { return oidc.AuthMethodBasic }
func (c *opClient) ResponseTypes() []oidc.ResponseType   { return nil }
func (c *opClient) LoginURL(string) string               { return "" }
func (c *opClient) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeJWT }
func (c *opClient) IDTokenLifetime() time.Duration       { return time.Hour }
func (c *opClient) DevMode() bool                        { return true }
func (c *opClient) IsScopeAllowed(string) bool           { return true }
func (c *opClient) IDTokenUserinfoClaimsAssertion() bool { return false }
func (c *opClient) ClockSkew() time.Duration             { return 0 }

func (c *opClient) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeClientCredentials, oidc.GrantTypeTokenExchange}
}

func (c *opClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(scopes []string) []string { return scopes }
}

func (c *opClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(scopes []string) []string { return scopes }
}
