package hydra

import (
	"bytes"
	"cmp"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Client is an OAuth2 client for the client_credentials grant (and those
// in GrantTypes).
type Client struct {
	ID, Secret string
	Scopes     []string
	Audience   []string
	// AuthMethod is "client_secret_basic" (the default when empty),
	// "client_secret_post" or "private_key_jwt" (no Secret; JWKS holds the
	// public keys its assertions are checked with, SigningAlg their alg).
	AuthMethod string
	JWKS       []jose.JSONWebKey
	SigningAlg string // token_endpoint_auth_signing_alg; Hydra's default RS256 when empty
	// GrantTypes are allowed besides client_credentials, e.g.
	// "urn:ietf:params:oauth:grant-type:jwt-bearer".
	GrantTypes []string
}

// TrustedIssuer is a jwt-bearer grant trust relationship (Hydra's
// /admin/trust/grants/jwt-bearer/issuers): assertions signed with Key by
// Issuer may be exchanged for tokens of their subject, with Scopes.
type TrustedIssuer struct {
	Issuer    string
	Key       jose.JSONWebKey // public key, with a kid
	Scopes    []string
	ExpiresAt time.Time
}

// Introspection is the part of an RFC 7662 introspection response that
// tests look at.
type Introspection struct {
	Active   bool     `json:"active"`
	Sub      string   `json:"sub"`
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope"`
	Aud      []string `json:"aud"`
	Exp      int64    `json:"exp"`
}

// CreateClient registers c through the admin API.
func (h *Hydra) CreateClient(t testing.TB, c Client) {
	t.Helper()
	method := c.AuthMethod
	client := map[string]any{
		"client_id":   c.ID,
		"grant_types": append([]string{"client_credentials"}, c.GrantTypes...),
		"scope":       strings.Join(c.Scopes, " "),
		"audience":    nonNil(c.Audience),
	}
	switch method {
	case "", "client_secret_basic", "client_secret_post":
		if c.Secret == "" {
			t.Fatalf("hydra: client %q needs a secret", c.ID)
		}
		client["client_secret"] = c.Secret
		method = cmp.Or(method, "client_secret_basic")
	case "private_key_jwt":
		if c.Secret != "" || len(c.JWKS) == 0 {
			t.Fatalf("hydra: private_key_jwt client %q needs JWKS and no secret", c.ID)
		}
		client["jwks"] = jose.JSONWebKeySet{Keys: c.JWKS}
		if c.SigningAlg != "" {
			client["token_endpoint_auth_signing_alg"] = c.SigningAlg
		}
	default:
		t.Fatalf("hydra: client %q: unsupported auth method %q", c.ID, method)
	}
	if c.ID == "" {
		t.Fatalf("hydra: client needs an ID")
	}
	client["token_endpoint_auth_method"] = method
	body, err := json.Marshal(client)
	if err != nil {
		t.Fatal(err)
	}
	h.adminCall(t, http.MethodPost, "/admin/clients", "application/json",
		bytes.NewReader(body), http.StatusCreated, nil)
}

// TrustIssuer creates a jwt-bearer grant trust relationship for any
// subject of ti.Issuer.
func (h *Hydra) TrustIssuer(t testing.TB, ti TrustedIssuer) {
	t.Helper()
	body, err := json.Marshal(map[string]any{
		"issuer":            ti.Issuer,
		"allow_any_subject": true,
		"scope":             nonNil(ti.Scopes),
		"jwk":               ti.Key,
		"expires_at":        ti.ExpiresAt.UTC().Format(time.RFC3339),
	})
	if err != nil {
		t.Fatal(err)
	}
	h.adminCall(t, http.MethodPost, "/admin/trust/grants/jwt-bearer/issuers", "application/json",
		bytes.NewReader(body), http.StatusCreated, nil)
}

// TokenURL is the token endpoint, through the counting proxy: the audience
// Hydra wants in client assertions and jwt-bearer grants.
func (h *Hydra) TokenURL() string { return h.issuer + "oauth2/token" }

// Introspect asks the admin API about token.
func (h *Hydra) Introspect(t testing.TB, token string) Introspection {
	t.Helper()
	var in Introspection
	form := url.Values{"token": {token}}.Encode()
	h.adminCall(t, http.MethodPost, "/admin/oauth2/introspect",
		"application/x-www-form-urlencoded", strings.NewReader(form), http.StatusOK, &in)
	return in
}

// adminCall sends a request to the admin API, fails the test unless the
// status is want, and decodes the JSON reply into out when out is not nil.
func (h *Hydra) adminCall(t testing.TB, method, path, contentType string, body io.Reader, want int, out any) {
	t.Helper()
	req, err := http.NewRequest(method, h.admin+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json")
	resp, err := h.http.Do(req)
	if err != nil {
		t.Fatalf("hydra: %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("hydra: %s %s: read reply: %v", method, path, err)
	}
	if resp.StatusCode != want {
		t.Fatalf("hydra: %s %s: %s: %s", method, path, resp.Status, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("hydra: %s %s: decode reply: %v", method, path, err)
		}
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
