package hydra_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthz/tokenauthz/internal/hydra"
)

func TestClientCredentials(t *testing.T) {
	tests := []struct {
		name       string
		authMethod string
	}{
		{name: "client-secret-basic-by-default"},
		{name: "client-secret-post", authMethod: "client_secret_post"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := hydra.Start(t)
			c := hydra.Client{
				ID:         "orders-client",
				Secret:     "orders-secret",
				Scopes:     []string{"orders.read", "orders.write"},
				Audience:   []string{"https://orders.internal"},
				AuthMethod: tc.authMethod,
			}
			h.CreateClient(t, c)

			tokenURL := discoverTokenEndpoint(t, h.Issuer())
			if !strings.HasPrefix(tokenURL, h.Issuer()) {
				t.Fatalf("token endpoint %s is not behind the proxy %s", tokenURL, h.Issuer())
			}
			token := requestToken(t, tokenURL, c, "orders.read")

			if n := len(strings.Split(token, ".")); n != 3 {
				t.Fatalf("token has %d segments, want a JWT: %q", n, token)
			}
			in := h.Introspect(t, token)
			if !in.Active || in.Sub != c.ID || in.ClientID != c.ID || in.Scope != "orders.read" {
				t.Errorf("introspection = %+v, want active, sub and client_id %q, scope orders.read", in, c.ID)
			}
			if in.Exp <= time.Now().Unix() {
				t.Errorf("exp %d is not in the future", in.Exp)
			}
			if got := h.TokenRequests(); got != 1 {
				t.Errorf("TokenRequests() = %d, want 1", got)
			}
		})
	}
}

func TestIntrospectUnknownToken(t *testing.T) {
	h := hydra.Start(t)
	if in := h.Introspect(t, "not-a-token"); in.Active {
		t.Errorf("introspection of garbage = %+v, want inactive", in)
	}
	if got := h.TokenRequests(); got != 0 {
		t.Errorf("TokenRequests() = %d, want 0", got)
	}
}

func discoverTokenEndpoint(t *testing.T, issuer string) string {
	t.Helper()
	resp, err := http.Get(strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Issuer        string   `json:"issuer"`
		TokenEndpoint string   `json:"token_endpoint"`
		GrantTypes    []string `json:"grant_types_supported"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatalf("discovery: %s: %v", resp.Status, err)
	}
	if doc.Issuer != issuer {
		t.Errorf("discovery issuer = %q, want %q", doc.Issuer, issuer)
	}
	if !slices.Contains(doc.GrantTypes, "client_credentials") {
		t.Errorf("grant_types_supported = %v, want client_credentials", doc.GrantTypes)
	}
	return doc.TokenEndpoint
}

// requestToken does an RFC 6749 section 4.4 request, authenticating the
// client the way it was registered.
func requestToken(t *testing.T, tokenURL string, c hydra.Client, scope string) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}
	if c.AuthMethod == "client_secret_post" {
		form.Set("client_id", c.ID)
		form.Set("client_secret", c.Secret)
	}
	req, err := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c.AuthMethod != "client_secret_post" {
		req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.Secret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		Scope       string `json:"scope"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil {
		t.Fatalf("token: %s: %v", resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token: %s: %s: %s", resp.Status, tok.Error, tok.Description)
	}
	if !strings.EqualFold(tok.TokenType, "bearer") || tok.Scope != scope {
		t.Errorf("token type %q scope %q, want bearer %q", tok.TokenType, tok.Scope, scope)
	}
	return tok.AccessToken
}
