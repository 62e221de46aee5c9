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
	errCaller         = errors.New("caller not allowed")
)

// Plan is what a request resolves to before any network call: the service and
// endpoint, the grant in effect (auto resolved) and the token request to make.
type Plan struct {
	Match       scopes.Match
	Grant       scopes.Grant
	Settings    *scopes.Settings
	Credentials *config.Credentials // nil when Grant needs no token
	Request     tokens.Request      // zero when Grant needs no token
}

// PlanFor maps a request to its plan under cfg: request -> AuthContext ->
// settings -> token request. It does no I/O, so `explain` shows exactly what
// a check would do.
func PlanFor(cfg *config.Config, in Input) (Plan, error) {
	if in.Method == "" || in.Path == "" || (in.Host == "" && in.Service == "") {
		return Plan{}, fmt.Errorf("%w: method, path and host (or a service context extension) are required", errMalformed)
	}
	m, err := cfg.Routes.Match(scopes.Request{
		Service: in.Service, Endpoint: in.Endpoint, Route: in.Route, Host: in.Host, Path: in.Path, Method: in.Method,
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
	if err := checkCaller(s, in, m); err != nil {
		return p, err
	}
	if !p.Grant.NeedsToken() {
		return p, nil
	}
	if p.Grant.NeedsSubject() && subject == "" {
		return p, fmt.Errorf("%w: service %q needs the caller's bearer token for %s", errMissingSubject, m.Service.Name, p.Grant)
	}
	p.Credentials = cfg.Credentials(s)
	p.Request = tokenRequest(m.Service.Name, s, p.Credentials)
	switch p.Grant {
	case scopes.GrantClientCredentials:
		p.Request.GrantType = tokens.GrantClientCredentials
	case scopes.GrantTokenExchange:
		p.Request.GrantType = tokens.GrantTokenExchange
		p.Request.SubjectToken, p.Request.SubjectTokenType = subject, s.SubjectTokenType
		p.Request.RequestedTokenType = s.RequestedTokenType
		if p.Credentials != nil && p.Credentials.Actor != nil {
			p.Request.Actor, p.Request.ActorTokenType = p.Credentials.Actor, s.ActorTokenType
		}
	case scopes.GrantJWTBearer:
		p.Request.GrantType = tokens.GrantJWTBearer
		p.Request.SubjectToken = subject
	}
	return p, nil
}

// checkCaller applies the callers allow-list of the settings in effect to
// the request's principal.
func checkCaller(s *scopes.Settings, in Input, m scopes.Match) error {
	if scopes.CallerAllowed(s.Callers, in.Principal) {
		return nil
	}
	what := fmt.Sprintf("service %q", m.Service.Name)
	if m.Endpoint != nil {
		what = fmt.Sprintf("endpoint %q of service %q", m.Endpoint.Name, m.Service.Name)
	}
	switch {
	case in.HTTPMode:
		return fmt.Errorf("%w: %s admits only listed callers, and HTTP mode carries no verified principal", errCaller, what)
	case in.Principal == "":
		return fmt.Errorf("%w: %s admits only listed callers, and the request has no principal (no verified client certificate)", errCaller, what)
	}
	return fmt.Errorf("%w: %q is not among the callers of %s", errCaller, scopes.Clip(in.Principal), what)
}

// tokenRequest is the part of the token request every grant shares; the
// credentials were built when the configuration was loaded.
func tokenRequest(service string, s *scopes.Settings, c *config.Credentials) tokens.Request {
	r := tokens.Request{
		Service:  service,
		Issuer:   s.TokenEndpoint.Issuer,
		TokenURL: s.TokenEndpoint.TokenURL,
		ClientID: s.ClientID,
		Scope:    s.Scope,
		Audience: s.Audience,
		Resource: s.Resource,
	}
	if c != nil {
		r.Auth, r.Params = c.Auth, c.Params
	}
	return r
}

// ClientCredentialsRequest is the token request of settings s of service
// when it resolves to client credentials without a caller's token
// (client_credentials, or auto when no bearer token comes): what a check
// there would fetch, so it can be fetched ahead (cache.prewarm).
func ClientCredentialsRequest(cfg *config.Config, service string, s *scopes.Settings) (tokens.Request, bool) {
	if s.Grant.Effective(false) != scopes.GrantClientCredentials {
		return tokens.Request{}, false
	}
	r := tokenRequest(service, s, cfg.Credentials(s))
	r.GrantType = tokens.GrantClientCredentials
	return r, true
}
