package devidp

import (
	"context"
	"errors"
	"net/http"
	"slices"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// server is the library's LegacyServer with the token endpoint's two grants
// overridden, to give the answers callers rely on and record what is issued.
type server struct {
	*op.LegacyServer
	provider   *op.Provider
	idp        *IdP
	certHeader string // see Options.ClientCertHeader
}

var _ op.ExtendedLegacyServer = (*server)(nil)

// VerifyClient answers a failed client authentication with 401, as RFC 6749
// section 5.2 asks; the library's handler would answer 400.
func (s *server) VerifyClient(ctx context.Context, r *op.Request[op.ClientCredentials]) (op.Client, error) {
	if c, ok := s.idp.storage.clients[r.Data.ClientID]; ok && c.TLSSubject != "" {
		return s.verifyCertificate(c, r)
	}
	client, err := s.LegacyServer.VerifyClient(ctx, r)
	var oerr *oidc.Error
	if errors.As(err, &oerr) && oerr.ErrorType == oidc.InvalidClient {
		return nil, op.NewStatusError(oerr, http.StatusUnauthorized)
	}
	return client, err
}

// verifyCertificate authenticates a tls_client_auth client (RFC 8705
// section 2.1.2) by the subject DN its proxy verified; nothing else counts.
func (s *server) verifyCertificate(c Client, r *op.Request[op.ClientCredentials]) (op.Client, error) {
	if r.Data.ClientSecret != "" || r.Data.ClientAssertion != "" || s.certHeader == "" ||
		r.Header.Get(s.certHeader) != c.TLSSubject {
		return nil, op.NewStatusError(oidc.ErrInvalidClient().WithDescription("client %s authenticates by its TLS certificate only", c.ID), http.StatusUnauthorized)
	}
	return &opClient{id: c.ID}, nil
}

// ClientCredentialsExchange issues a token for the client itself. It builds
// the token request here rather than in the storage, which is not given the
// form, so that "audience" and "resource" reach the aud claim.
func (s *server) ClientCredentialsExchange(ctx context.Context, r *op.ClientRequest[oidc.ClientCredentialsRequest]) (*op.Response, error) {
	req := &tokenRequest{
		subject:  r.Client.GetID(),
		audience: requestedAudience(r.Form["audience"], r.Form["resource"]),
		scopes:   r.Data.Scope,
	}
	resp, err := op.CreateClientCredentialsTokenResponse(ctx, req, s.provider, r.Client)
	if err != nil {
		return nil, err
	}
	resp.ExpiresIn = s.expiresIn()
	s.idp.record(Issued{
		AccessToken: resp.AccessToken,
		GrantType:   GrantClientCredentials,
		ClientID:    r.Client.GetID(),
		Subject:     req.subject,
		Scope:       slices.Clone(req.scopes),
		Audience:    slices.Clone(req.audience),
	})
	return op.NewResponse(resp), nil
}

// TokenExchange issues a token for the user of the subject token. An
// invalid, expired or foreign subject token is invalid_grant (RFC 8693
// section 2.2.2); the library would call it invalid_request.
func (s *server) TokenExchange(ctx context.Context, r *op.ClientRequest[oidc.TokenExchangeRequest]) (*op.Response, error) {
	data := r.Data
	if data.SubjectTokenType != oidc.AccessTokenType {
		return nil, oidc.ErrInvalidRequest().WithDescription("subject_token_type %s is not supported: use %s", data.SubjectTokenType, oidc.AccessTokenType)
	}
	if _, err := op.VerifyAccessToken[*oidc.AccessTokenClaims](ctx, data.SubjectToken, s.provider.AccessTokenVerifier(ctx)); err != nil {
		return nil, oidc.ErrInvalidGrant().WithDescription("subject_token is invalid or expired").WithParent(err)
	}
	data.Audience = requestedAudience(data.Audience, data.Resource)

	req, err := op.CreateTokenExchangeRequest(ctx, data, r.Client, s.provider)
	if err != nil {
		return nil, err
	}
	resp, err := op.CreateTokenExchangeResponse(ctx, req, r.Client, s.provider)
	if err != nil {
		return nil, err
	}
	resp.ExpiresIn = s.expiresIn()
	s.idp.record(Issued{
		AccessToken: resp.AccessToken,
		GrantType:   GrantTokenExchange,
		ClientID:    r.Client.GetID(),
		Subject:     req.GetSubject(),
		Scope:       slices.Clone(req.GetScopes()),
		Audience:    slices.Clone(req.GetAudience()),
		Actor:       req.GetExchangeActor(),
	})
	return op.NewResponse(resp), nil
}

// expiresIn is the configured TTL: the library computes it from the expiry
// after signing, which truncates to one second less.
func (s *server) expiresIn() uint64 { return uint64(s.idp.storage.ttl.Seconds()) }

// requestedAudience is the audience then resource parameters, without
// empty values or repeats.
func requestedAudience(audience, resource []string) []string {
	var out []string
	for _, a := range slices.Concat(audience, resource) {
		if a != "" && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}
