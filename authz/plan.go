package authz

import (
	"errors"
	"fmt"

	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/scopes"
	"github.com/tokenauthz/tokenauthz/tokens"
)

// Reasons a request cannot be planned, besides the matching errors of scopes.
var (
	errMalformed      = errors.New("malformed request")
	errMissingSubject = errors.New("no bearer token to exchange")
	errUnmatched      = errors.New("no service matches; passed through (unmatched: allow)")
)

// Plan is what a request resolves to before any network call: the service and
// endpoint, the grant in effect (auto resolved) and the token request to make.
type Plan struct {
	Match    scopes.Match
	Grant    scopes.Grant
	Settings *scopes.Settings
	Request  tokens.Request // zero when Grant needs no token
}

// PlanFor maps a request to its plan under cfg: request -> AuthContext ->
// settings -> token request. It does no I/O, so `explain` shows exactly what
// a check would do.
func PlanFor(cfg *config.Config, in Input) (Plan, error) {
	if in.Method == "" || in.Path == "" || (in.Host == "" && in.Service == "") {
		return Plan{}, fmt.Errorf("%w: method, path and host (or a service context extension) are required", errMalformed)
	}
	m, err := cfg.Routes.Match(scopes.Request{
		Service: in.Service, Endpoint: in.Endpoint, Host: in.Host, Path: in.Path, Method: in.Method,
	})
	if errors.Is(err, scopes.ErrNoMatch) && cfg.Unmatched == config.UnmatchedAllow {
		return Plan{}, errUnmatched
	}
	if err != nil {
		return Plan{}, err
	}
	s := m.Settings()
	subject := bearer(in.Authorization)
	p := Plan{Match: m, Settings: s, Grant: s.Grant.Effective(subject != "")}
	switch p.Grant {
	case scopes.GrantClientCredentials:
		p.Request = tokenRequest(m.Service.Name, s, tokens.GrantClientCredentials)
	case scopes.GrantTokenExchange:
		if subject == "" {
			return p, fmt.Errorf("%w: service %q needs the caller's bearer token for token exchange", errMissingSubject, m.Service.Name)
		}
		p.Request = tokenRequest(m.Service.Name, s, tokens.GrantTokenExchange)
		p.Request.SubjectToken = subject
		p.Request.SubjectTokenType = s.SubjectTokenType
	}
	return p, nil
}

func tokenRequest(service string, s *scopes.Settings, grant string) tokens.Request {
	return tokens.Request{
		Service:            service,
		Issuer:             s.TokenEndpoint.Issuer,
		TokenURL:           s.TokenEndpoint.TokenURL,
		ClientID:           s.ClientID,
		ClientSecret:       s.Secret.Value,
		ClientAuth:         string(s.ClientAuth),
		GrantType:          grant,
		Scope:              s.Scope,
		Audience:           s.Audience,
		Resource:           s.Resource,
		RequestedTokenType: s.RequestedTokenType,
	}
}

// ClientCredentialsRequest is the token request of settings s of service
// when it resolves to client credentials without a caller's token
// (client_credentials, or auto when no bearer token comes): what a check
// there would fetch, so it can be fetched ahead (cache.prewarm).
func ClientCredentialsRequest(service string, s *scopes.Settings) (tokens.Request, bool) {
	if s.Grant.Effective(false) != scopes.GrantClientCredentials {
		return tokens.Request{}, false
	}
	return tokenRequest(service, s, tokens.GrantClientCredentials), true
}
