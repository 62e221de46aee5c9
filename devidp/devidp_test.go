package devidp

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

const (
	testTTL   = 2 * time.Minute
	userToken = "urn:ietf:params:oauth:token-type:access_token"
)

var testClients = []Client{{ID: "broker", Secret: "s3cret"}, {ID: "other", Secret: "pa:ss word"}}

func startIdP(t *testing.T) *IdP {
	t.Helper()
	p, err := Start(t.Context(), Options{Clients: testClients, AccessTokenTTL: testTTL})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

// auth says how a request authenticates its client.
type auth struct {
	id, secret string
	post       bool // client_secret_post instead of client_secret_basic
}

// tokenResponse is the union of the success and error bodies.
type tokenResponse struct {
	AccessToken     string `json:"access_token"`
	TokenType       string `json:"token_type"`
	IssuedTokenType string `json:"issued_token_type"`
	ExpiresIn       int    `json:"expires_in"`
	Scope           string `json:"scope"`
	Error           string `json:"error"`
}

func postToken(t *testing.T, p *IdP, a auth, form url.Values) (int, tokenResponse) {
	t.Helper()
	status, body, err := doToken(t.Context(), p, a, form)
	if err != nil {
		t.Fatal(err)
	}
	return status, body
}

func doToken(ctx context.Context, p *IdP, a auth, form url.Values) (int, tokenResponse, error) {
	var body tokenResponse
	form = cloneForm(form)
	if a.post {
		form.Set("client_id", a.id)
		form.Set("client_secret", a.secret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.TokenEndpoint(), strings.NewReader(form.Encode()))
	if err != nil {
		return 0, body, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if !a.post {
		req.SetBasicAuth(url.QueryEscape(a.id), url.QueryEscape(a.secret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, body, fmt.Errorf("POST token: %w", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, body, fmt.Errorf("decode token response (status %d): %w", resp.StatusCode, err)
	}
	return resp.StatusCode, body, nil
}

func cloneForm(f url.Values) url.Values {
	out := url.Values{}
	for k, v := range f {
		out[k] = slices.Clone(v)
	}
	return out
}

// verify checks token against the provider's discovery document and JWKS,
// as a resource server would, and returns its claims.
func verify(t *testing.T, p *IdP, token string) *oidc.AccessTokenClaims {
	t.Helper()
	var disc oidc.DiscoveryConfiguration
	getJSON(t, p.Issuer()+oidc.DiscoveryEndpoint, &disc)
	var keys jwks
	getJSON(t, disc.JwksURI, &keys)
	claims, err := op.VerifyAccessToken[*oidc.AccessTokenClaims](t.Context(), token, op.NewAccessTokenVerifier(disc.Issuer, keys))
	if err != nil {
		t.Fatalf("verify access token: %v", err)
	}
	return claims
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// jwks is a fetched JWKS as an oidc.KeySet.
type jwks jose.JSONWebKeySet

func (k jwks) VerifySignature(_ context.Context, jws *jose.JSONWebSignature) ([]byte, error) {
	set := jose.JSONWebKeySet(k)
	for _, sig := range jws.Signatures {
		for _, key := range set.Key(sig.Header.KeyID) {
			if payload, err := jws.Verify(key); err == nil {
				return payload, nil
			}
		}
	}
	return nil, fmt.Errorf("no key in the JWKS verifies the token")
}

func scopeClaim(c *oidc.AccessTokenClaims) string {
	s, _ := c.Claims["scope"].(string)
	return s
}

func TestClientCredentials(t *testing.T) {
	p := startIdP(t)
	tests := []struct {
		name     string
		auth     auth
		form     url.Values
		wantAud  []string
		wantScop string
	}{
		{
			name:     "basic-auth-with-audience",
			auth:     auth{id: "broker", secret: "s3cret"},
			form:     url.Values{"scope": {"orders.read"}, "audience": {"orders"}},
			wantAud:  []string{"orders"},
			wantScop: "orders.read",
		},
		{
			name:     "post-auth-with-resource-and-two-scopes",
			auth:     auth{id: "broker", secret: "s3cret", post: true},
			form:     url.Values{"scope": {"orders.read orders.write"}, "resource": {"https://orders.example"}},
			wantAud:  []string{"https://orders.example"},
			wantScop: "orders.read orders.write",
		},
		{
			name:     "basic-auth-escaped-secret-no-audience",
			auth:     auth{id: "other", secret: "pa:ss word"},
			form:     url.Values{"scope": {"x"}},
			wantAud:  []string{"other"},
			wantScop: "x",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := cloneForm(tt.form)
			form.Set("grant_type", "client_credentials")
			status, resp := postToken(t, p, tt.auth, form)
			if status != http.StatusOK {
				t.Fatalf("status = %d (%s), want 200", status, resp.Error)
			}
			if resp.TokenType != "Bearer" || resp.ExpiresIn != int(testTTL.Seconds()) || resp.Scope != tt.wantScop {
				t.Errorf("response token_type=%q expires_in=%d scope=%q, want Bearer %d %q",
					resp.TokenType, resp.ExpiresIn, resp.Scope, int(testTTL.Seconds()), tt.wantScop)
			}
			claims := verify(t, p, resp.AccessToken)
			if claims.Subject != tt.auth.id || claims.ClientID != tt.auth.id {
				t.Errorf("sub=%q client_id=%q, want %q", claims.Subject, claims.ClientID, tt.auth.id)
			}
			if !slices.Equal(claims.Audience, tt.wantAud) {
				t.Errorf("aud = %q, want %q", claims.Audience, tt.wantAud)
			}
			if got := scopeClaim(claims); got != tt.wantScop {
				t.Errorf("scope claim = %q, want %q", got, tt.wantScop)
			}
			if d := time.Until(claims.Expiration.AsTime()); d > testTTL || d < testTTL-10*time.Second {
				t.Errorf("exp in %v, want about %v", d, testTTL)
			}
		})
	}
}

func TestTokenExchange(t *testing.T) {
	p := startIdP(t)
	alice, err := p.UserToken("alice", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	_, cc := postToken(t, p, auth{id: "other", secret: "pa:ss word"}, url.Values{"grant_type": {"client_credentials"}})
	if cc.AccessToken == "" {
		t.Fatalf("client credentials for the subject token failed: %s", cc.Error)
	}
	tests := []struct {
		name     string
		auth     auth
		subject  string
		form     url.Values
		wantSub  string
		wantAud  []string
		wantScop string
	}{
		{
			name:     "user-token-basic-auth-scope-and-audience",
			auth:     auth{id: "broker", secret: "s3cret"},
			subject:  alice,
			form:     url.Values{"scope": {"orders.read"}, "audience": {"orders"}},
			wantSub:  "alice",
			wantAud:  []string{"orders"},
			wantScop: "orders.read",
		},
		{
			name:     "user-token-post-auth-resource",
			auth:     auth{id: "broker", secret: "s3cret", post: true},
			subject:  alice,
			form:     url.Values{"scope": {"a b"}, "resource": {"https://billing.example"}, "requested_token_type": {userToken}},
			wantSub:  "alice",
			wantAud:  []string{"https://billing.example"},
			wantScop: "a b",
		},
		{
			name:     "op-issued-client-token",
			auth:     auth{id: "broker", secret: "s3cret"},
			subject:  cc.AccessToken,
			form:     url.Values{"scope": {"s"}, "audience": {"x", "y"}},
			wantSub:  "other",
			wantAud:  []string{"x", "y"},
			wantScop: "s",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := cloneForm(tt.form)
			form.Set("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange")
			form.Set("subject_token", tt.subject)
			form.Set("subject_token_type", userToken)
			status, resp := postToken(t, p, tt.auth, form)
			if status != http.StatusOK {
				t.Fatalf("status = %d (%s), want 200", status, resp.Error)
			}
			if resp.TokenType != "Bearer" || resp.IssuedTokenType != userToken || resp.ExpiresIn != int(testTTL.Seconds()) || resp.Scope != tt.wantScop {
				t.Errorf("response token_type=%q issued_token_type=%q expires_in=%d scope=%q",
					resp.TokenType, resp.IssuedTokenType, resp.ExpiresIn, resp.Scope)
			}
			claims := verify(t, p, resp.AccessToken)
			if claims.Subject != tt.wantSub || claims.ClientID != tt.auth.id {
				t.Errorf("sub=%q client_id=%q, want %q %q", claims.Subject, claims.ClientID, tt.wantSub, tt.auth.id)
			}
			if !slices.Equal(claims.Audience, tt.wantAud) {
				t.Errorf("aud = %q, want %q", claims.Audience, tt.wantAud)
			}
			if got := scopeClaim(claims); got != tt.wantScop {
				t.Errorf("scope claim = %q, want %q", got, tt.wantScop)
			}
		})
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	p := startIdP(t)
	foreign := startIdP(t)
	alice, err := p.UserToken("alice", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	expired, err := p.UserToken("alice", -time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	notOurs, err := foreign.UserToken("alice", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	exchange := func(subject string) url.Values {
		return url.Values{
			"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
			"subject_token":      {subject},
			"subject_token_type": {userToken},
			"scope":              {"orders.read"},
		}
	}
	good := auth{id: "broker", secret: "s3cret"}
	cc := url.Values{"grant_type": {"client_credentials"}}
	tests := []struct {
		name       string
		auth       auth
		form       url.Values
		wantStatus int
		wantError  string
	}{
		{"exchange-garbage-subject-token", good, exchange("garbage"), 400, "invalid_grant"},
		{"exchange-expired-subject-token", good, exchange(expired), 400, "invalid_grant"},
		{"exchange-subject-token-of-other-idp", good, exchange(notOurs), 400, "invalid_grant"},
		{"exchange-bad-secret-basic", auth{id: "broker", secret: "nope"}, exchange(alice), 401, "invalid_client"},
		{"exchange-bad-secret-post", auth{id: "broker", secret: "nope", post: true}, exchange(alice), 401, "invalid_client"},
		{"exchange-refresh-token-requested", good, func() url.Values {
			f := exchange(alice)
			f.Set("requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token")
			return f
		}(), 400, "invalid_request"},
		{"client-credentials-bad-secret-basic", auth{id: "broker", secret: "nope"}, cc, 401, "invalid_client"},
		{"client-credentials-bad-secret-post", auth{id: "broker", secret: "nope", post: true}, cc, 401, "invalid_client"},
		{"client-credentials-unknown-client", auth{id: "ghost", secret: "s3cret"}, cc, 401, "invalid_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, resp := postToken(t, p, tt.auth, tt.form)
			if status != tt.wantStatus || resp.Error != tt.wantError {
				t.Errorf("got %d %q, want %d %q", status, resp.Error, tt.wantStatus, tt.wantError)
			}
			if resp.AccessToken != "" {
				t.Errorf("error response carries an access token")
			}
		})
	}
	if n := len(p.Issued()); n != 0 {
		t.Errorf("Issued() has %d tokens after only failures", n)
	}
	if got, want := p.TokenRequests(), len(tests); got != want {
		t.Errorf("TokenRequests() = %d, want %d", got, want)
	}
}

func TestIssuedRecord(t *testing.T) {
	p := startIdP(t)
	bob, err := p.UserToken("bob", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	broker := auth{id: "broker", secret: "s3cret"}
	steps := []struct {
		auth auth
		form url.Values
		want *Issued // nil: the request fails
	}{
		{broker, url.Values{"grant_type": {"client_credentials"}, "scope": {"orders.read"}, "audience": {"orders"}},
			&Issued{GrantType: GrantClientCredentials, ClientID: "broker", Subject: "broker", Scope: []string{"orders.read"}, Audience: []string{"orders"}}},
		{auth{id: "broker", secret: "bad"}, url.Values{"grant_type": {"client_credentials"}}, nil},
		{broker, url.Values{
			"grant_type":         {GrantTokenExchange},
			"subject_token":      {bob},
			"subject_token_type": {userToken},
			"scope":              {"a b"},
			"audience":           {"billing"},
			"resource":           {"https://billing.example"},
		}, &Issued{GrantType: GrantTokenExchange, ClientID: "broker", Subject: "bob", Scope: []string{"a", "b"}, Audience: []string{"billing", "https://billing.example"}}},
		{broker, url.Values{"grant_type": {"password"}}, nil},
	}
	var want []Issued
	for i, s := range steps {
		status, resp := postToken(t, p, s.auth, s.form)
		if (status == http.StatusOK) != (s.want != nil) {
			t.Fatalf("step %d: status %d (%s)", i, status, resp.Error)
		}
		if s.want != nil {
			w := *s.want
			w.AccessToken = resp.AccessToken
			want = append(want, w)
		}
	}
	got := p.Issued()
	if len(got) != len(want) {
		t.Fatalf("Issued() has %d tokens, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.AccessToken != w.AccessToken || g.GrantType != w.GrantType || g.ClientID != w.ClientID ||
			g.Subject != w.Subject || !slices.Equal(g.Scope, w.Scope) || !slices.Equal(g.Audience, w.Audience) {
			t.Errorf("Issued()[%d] = %+v, want %+v", i, g, w)
		}
	}
	got[0].Scope[0] = "mutated"
	if p.Issued()[0].Scope[0] != "orders.read" {
		t.Error("Issued() returned the record itself, not a copy")
	}
	if got, want := p.TokenRequests(), len(steps); got != want {
		t.Errorf("TokenRequests() = %d, want %d", got, want)
	}

	// Concurrent use, for the race detector.
	const n = 8
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if status, _, err := doToken(t.Context(), p, broker, url.Values{"grant_type": {"client_credentials"}}); err != nil || status != http.StatusOK {
				t.Errorf("concurrent request: status %d, err %v", status, err)
			}
			_ = p.Issued()
			_ = p.TokenRequests()
		})
	}
	wg.Wait()
	if got, want := len(p.Issued()), len(want)+n; got != want {
		t.Errorf("after concurrent requests Issued() has %d tokens, want %d", got, want)
	}
	if got, want := p.TokenRequests(), len(steps)+n; got != want {
		t.Errorf("after concurrent requests TokenRequests() = %d, want %d", got, want)
	}
}

func TestDiscovery(t *testing.T) {
	p := startIdP(t)
	if !strings.HasPrefix(p.Issuer(), "http://127.0.0.1:") {
		t.Errorf("Issuer() = %q, want http://127.0.0.1:<port>", p.Issuer())
	}
	var disc oidc.DiscoveryConfiguration
	getJSON(t, p.Issuer()+oidc.DiscoveryEndpoint, &disc)
	if disc.Issuer != p.Issuer() || disc.TokenEndpoint != p.TokenEndpoint() {
		t.Errorf("discovery issuer=%q token_endpoint=%q, want %q %q", disc.Issuer, disc.TokenEndpoint, p.Issuer(), p.TokenEndpoint())
	}
	for _, g := range []oidc.GrantType{oidc.GrantTypeClientCredentials, oidc.GrantTypeTokenExchange} {
		if !slices.Contains(disc.GrantTypesSupported, g) {
			t.Errorf("grant_types_supported %q lacks %q", disc.GrantTypesSupported, g)
		}
	}
	for _, m := range []oidc.AuthMethod{oidc.AuthMethodBasic, oidc.AuthMethodPost} {
		if !slices.Contains(disc.TokenEndpointAuthMethodsSupported, m) {
			t.Errorf("token_endpoint_auth_methods_supported %q lacks %q", disc.TokenEndpointAuthMethodsSupported, m)
		}
	}
}

func TestStop(t *testing.T) {
	tests := []struct {
		name string
		stop func(p *IdP, cancel context.CancelFunc)
	}{
		{"close", func(p *IdP, _ context.CancelFunc) { _ = p.Close() }},
		{"context-end", func(_ *IdP, cancel context.CancelFunc) { cancel() }},
		{"context-end-then-close", func(p *IdP, cancel context.CancelFunc) { cancel(); _ = p.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			p, err := Start(ctx, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			addr := strings.TrimPrefix(p.Issuer(), "http://")
			tt.stop(p, cancel)
			deadline := time.Now().Add(5 * time.Second)
			for {
				conn, err := net.DialTimeout("tcp", addr, time.Second)
				if err != nil {
					break
				}
				conn.Close()
				if time.Now().After(deadline) {
					t.Fatal("still listening 5s after stop")
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err := p.Close(); err != nil {
				t.Errorf("Close after stop: %v", err)
			}
		})
	}
}

func TestStartOptions(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr bool
	}{
		{"zero-options", Options{}, false},
		{"client-without-secret", Options{Clients: []Client{{ID: "a"}}}, true},
		{"duplicate-client", Options{Clients: []Client{{ID: "a", Secret: "x"}, {ID: "a", Secret: "y"}}}, true},
		{"ttl-under-a-second", Options{AccessTokenTTL: time.Millisecond}, true},
		{"bad-address", Options{Addr: "256.0.0.1:0"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Start(t.Context(), tt.opts)
			if err == nil {
				p.Close()
			}
			if (err != nil) != tt.wantErr {
				t.Errorf("Start error = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestUserTokenEmptySubject(t *testing.T) {
	p := startIdP(t)
	if _, err := p.UserToken("", time.Minute); err == nil {
		t.Error("UserToken with an empty subject succeeded")
	}
}
