package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tokenauthz/tokenauthz/scopes"
	"github.com/tokenauthz/tokenauthz/tokens"
)

// ErrCredentialFile: a key, certificate or token file that cannot be read
// or parsed.
var ErrCredentialFile = errors.New("unusable credential file")

// Credentials are what the token layer needs of one resolved level (a
// service or an endpoint), built once when the configuration is loaded: the
// client authentication, the actor token file and token_params. Checks only
// look them up.
type Credentials struct {
	Auth   tokens.ClientAuth
	Actor  *tokens.TokenFile // nil: no actor_token_file
	Params []tokens.Param    // token_params, sorted by name
}

// Credentials returns those of s, the settings of a service or endpoint of
// c.Routes; nil when s fetches no token.
func (c *Config) Credentials(s *scopes.Settings) *Credentials { return c.creds[s] }

// Unusable lists the services (and endpoints) whose credentials cannot be
// used now, and why: an expired or missing assertion file, a key or
// certificate that went away. It reads those files: for /readyz, not for
// checks.
func (c *Config) Unusable(now time.Time) []string {
	var out []string
	seen := map[string]bool{}
	report := func(where string, cr *Credentials) {
		for _, part := range []any{cr.Auth, cr.Actor} {
			if err := tokens.Unusable(part, now); err != nil {
				// An endpoint inheriting its service's credential says the same: once is enough.
				if msg := err.Error(); !seen[msg] {
					seen[msg] = true
					out = append(out, where+": "+msg)
				}
			}
		}
	}
	for _, svc := range c.Routes.Services() {
		if cr := c.creds[&svc.Settings]; cr != nil {
			report("service "+svc.Name, cr)
		}
		for _, ep := range svc.Endpoints {
			if cr := c.creds[&ep.Settings]; cr != nil {
				report("service "+svc.Name+" endpoint "+ep.Name, cr)
			}
		}
	}
	return out
}

// protocolParams are the form parameters the protocol sets itself, which
// token_params may not set.
var protocolParams = []string{"grant_type", "client_id", "client_secret", "client_assertion", "client_assertion_type",
	"assertion", "subject_token", "subject_token_type", "actor_token", "actor_token_type", "scope", "audience",
	"resource", "requested_token_type"}

// secretless converts one level's keys of issue 9 into l, checking each
// value it can check alone. Files are resolved against the config's folder;
// they are read when the level's credentials are built.
func (b *builder) secretless(key string, raw rawAuth, l *scopes.Layer) {
	l.ClientKeyFile = b.file(key+".client_key_file", raw.ClientKeyFile)
	l.ClientKeyID = ptr(raw.ClientKeyID, b.expand(key+".client_key_id", raw.ClientKeyID))
	l.ClientCertFile = b.file(key+".client_cert_file", raw.ClientCertFile)
	if a := raw.ClientAssertionAlg; a != nil {
		if !slices.Contains(tokens.Algs, *a) {
			b.fail(key+".client_assertion_alg", ErrInvalidValue, "%q is not one of %s", *a, strings.Join(tokens.Algs, ", "))
		}
		l.ClientAssertionAlg = a
	}
	l.ClientAssertionAudience = ptr(raw.ClientAssertionAudience, b.expand(key+".client_assertion_audience", raw.ClientAssertionAudience))
	l.ClientAssertionFile = b.file(key+".client_assertion_file", raw.ClientAssertionFile)
	if t := raw.ClientAssertionType; t != nil {
		if !slices.Contains(scopes.AssertionTypes, *t) {
			b.fail(key+".client_assertion_type", ErrInvalidValue, "unknown client assertion type %q: want one of %s", *t, strings.Join(scopes.AssertionTypes, ", "))
		}
		l.ClientAssertionType = t
	}
	if raw.TokenParams != nil {
		l.TokenParams = []scopes.Param{}
		for _, name := range sortedKeys(raw.TokenParams) {
			if slices.Contains(protocolParams, name) {
				b.fail(key+".token_params."+name, ErrInvalidValue, "%s is set by the protocol (or its own key), not by token_params", name)
				continue
			}
			v := raw.TokenParams[name]
			l.TokenParams = append(l.TokenParams, scopes.Param{Name: name, Value: b.expand(key+".token_params."+name, &v)})
		}
	}
	l.ActorTokenFile = b.file(key+".actor_token_file", raw.ActorTokenFile)
	if t := raw.ActorTokenType; t != nil && *t == "" {
		b.fail(key+".actor_token_type", ErrInvalidValue, "is empty")
	}
	l.ActorTokenType = raw.ActorTokenType
}

// file expands and resolves a file key, remembering which key set the
// resolved path so that a problem with the file names that key.
func (b *builder) file(key string, raw *string) *string {
	if raw == nil {
		return nil
	}
	f, ok := b.expandOK(key, raw)
	switch {
	case !ok:
	case f == "":
		b.fail(key, ErrCredentialFile, "empty file name")
	case !filepath.IsAbs(f):
		f = filepath.Join(b.dir, f)
	}
	if _, set := b.fileKeys[f]; !set {
		b.fileKeys[f] = key
	}
	return &f
}

// credentials checks that a level whose grant fetches tokens has what its
// client_auth needs, and builds its Credentials. It returns what is
// missing, and stays quiet when that is what the parent already reported
// (an endpoint that inherits its service's gap).
func (b *builder) credentials(key string, s *scopes.Settings, parentMissing string) string {
	if !s.Grant.NeedsToken() {
		return ""
	}
	var missing []string
	if s.TokenEndpoint.Issuer == "" && s.TokenEndpoint.TokenURL == "" {
		missing = append(missing, "issuer or token_url")
	}
	if s.ClientID == "" && s.ClientAuth != scopes.ClientAuthNone {
		missing = append(missing, "client_id")
	}
	needs := func(what, set string) {
		if set == "" {
			missing = append(missing, fmt.Sprintf("%s (for client_auth %s)", what, s.ClientAuth))
		}
	}
	switch s.ClientAuth {
	case scopes.ClientAuthBasic, scopes.ClientAuthPost:
		if s.Secret.Key == "" {
			missing = append(missing, "client_secret or client_secret_file")
		}
	case scopes.ClientAuthPrivateKeyJWT:
		needs("client_key_file", s.ClientKeyFile)
	case scopes.ClientAuthClientAssertion:
		needs("client_assertion_file", s.ClientAssertionFile)
	case scopes.ClientAuthTLS:
		needs("client_cert_file", s.ClientCertFile)
		needs("client_key_file", s.ClientKeyFile)
	}
	msg := fmt.Sprintf("grant_type %s needs %s (set here, in the service or in defaults)", s.Grant, strings.Join(missing, ", "))
	if len(missing) > 0 {
		if msg != parentMissing {
			b.fail(key, ErrMissingCredentials, "%s", msg)
		}
		return msg
	}
	b.creds[s] = &Credentials{Auth: b.clientAuth(key, s), Actor: b.actor(s), Params: params(s.TokenParams)}
	return ""
}

// authSpec is what one ClientAuth is made of; levels with equal specs share
// one (one read of its files, one TLS transport, one report of a problem).
type authSpec struct {
	method                                     scopes.ClientAuth
	secret, secretKey                          string
	keyFile, keyID, certFile, alg, aud, assert string
	assertType                                 string
}

// clientAuth returns the ClientAuth of s, built once per distinct spec. A
// problem with a file is reported at the key that names the file, others at
// the level; each once.
func (b *builder) clientAuth(key string, s *scopes.Settings) tokens.ClientAuth {
	spec := authSpec{method: s.ClientAuth}
	switch s.ClientAuth {
	case scopes.ClientAuthBasic, scopes.ClientAuthPost:
		spec.secret, spec.secretKey = s.Secret.Value, s.Secret.Key
	case scopes.ClientAuthPrivateKeyJWT:
		spec.keyFile, spec.keyID, spec.certFile, spec.alg, spec.aud = s.ClientKeyFile, s.ClientKeyID, s.ClientCertFile, s.ClientAssertionAlg, s.ClientAssertionAudience
	case scopes.ClientAuthClientAssertion:
		spec.assert, spec.assertType = s.ClientAssertionFile, s.ClientAssertionType
	case scopes.ClientAuthTLS:
		spec.certFile, spec.keyFile = s.ClientCertFile, s.ClientKeyFile
	}
	if a, ok := b.auths[spec]; ok {
		return a
	}
	a, err := newClientAuth(spec, b.tokenFile)
	if err != nil {
		b.materialProblem(key, spec, err)
	}
	b.auths[spec] = a
	return a
}

func newClientAuth(spec authSpec, tokenFile func(key, path string) *tokens.TokenFile) (tokens.ClientAuth, error) {
	switch spec.method {
	case scopes.ClientAuthBasic:
		return tokens.Basic(spec.secret, spec.secretKey), nil
	case scopes.ClientAuthPost:
		return tokens.Post(spec.secret, spec.secretKey), nil
	case scopes.ClientAuthPrivateKeyJWT:
		return tokens.PrivateKeyJWT(tokens.KeyJWT{KeyFile: spec.keyFile, KeyID: spec.keyID, CertFile: spec.certFile, Alg: spec.alg, Audience: spec.aud})
	case scopes.ClientAuthClientAssertion:
		return tokens.ClientAssertion(tokenFile("client_assertion_file", spec.assert), spec.assertType), nil
	case scopes.ClientAuthTLS:
		return tokens.TLSClientAuth(spec.certFile, spec.keyFile)
	}
	return tokens.NoClientAuth(), nil
}

// materialProblem reports why a ClientAuth could not be built.
func (b *builder) materialProblem(key string, spec authSpec, err error) {
	fileKey := func(file string) string {
		if k := b.fileKeys[file]; k != "" {
			return k
		}
		return key
	}
	switch {
	case errors.Is(err, tokens.ErrKeyFile):
		b.fail(fileKey(spec.keyFile), ErrCredentialFile, "%v", err)
	case errors.Is(err, tokens.ErrCertFile):
		b.fail(fileKey(spec.certFile), ErrCredentialFile, "%v", err)
	case errors.Is(err, tokens.ErrAlg):
		b.fail(key, ErrInvalidValue, "client_assertion_alg: %v (client_key_file %s)", err, spec.keyFile)
	case errors.Is(err, tokens.ErrCertKeyPair):
		b.fail(key, ErrInvalidValue, "client_cert_file %s: %v (client_key_file %s)", spec.certFile, err, spec.keyFile)
	default:
		b.fail(key, ErrInvalidValue, "client_auth %s: %v", spec.method, err)
	}
}

// actor is the actor token file of s, for token exchanges, or nil.
func (b *builder) actor(s *scopes.Settings) *tokens.TokenFile {
	if s.ActorTokenFile == "" || (s.Grant != scopes.GrantTokenExchange && s.Grant != scopes.GrantAuto) {
		return nil
	}
	return b.tokenFile("actor_token_file", s.ActorTokenFile)
}

// tokenFile returns one TokenFile per key and path, shared by the levels.
func (b *builder) tokenFile(key, path string) *tokens.TokenFile {
	id := key + "\x00" + path
	if f, ok := b.tokenFiles[id]; ok {
		return f
	}
	f := tokens.NewTokenFile(key, path)
	b.tokenFiles[id] = f
	return f
}

func params(ps []scopes.Param) []tokens.Param {
	if len(ps) == 0 {
		return nil
	}
	out := make([]tokens.Param, len(ps))
	for i, p := range ps {
		out[i] = tokens.Param{Name: p.Name, Value: p.Value}
	}
	return out
}
