package e2e

import (
	"crypto/elliptic"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/grpc/codes"

	"github.com/tokenauthz/tokenauthz/internal/hydra"
	"github.com/tokenauthz/tokenauthz/internal/testkeys"
	"github.com/tokenauthz/tokenauthz/tokens"
)

// secretlessHydraConfig has no static secret: every client authenticates
// with a key (private_key_jwt) or an assertion from a file.
const secretlessHydraConfig = `
defaults:
  issuer: %[1]s
  client_id: pkjwt-rsa
  client_auth: private_key_jwt
  client_key_file: %[2]s/rsa.pem
  client_key_id: rsa-1
  grant_type: client_credentials
services:
  rsa:
    hosts: [rsa.internal]
    scope: orders.read
    endpoints:
      a: {path: /a, scope: orders.a}
      b: {path: /b, scope: orders.b}
      c: {path: /c, scope: orders.c}
      d: {path: /d, scope: orders.d}
  ec:
    hosts: [ec.internal]
    client_id: pkjwt-ec
    client_key_file: %[2]s/ec.pem
    client_key_id: ""
    scope: orders.read
  unknownkey:
    hosts: [unknown.internal]
    client_key_file: %[2]s/unknown.pem
  federated:
    hosts: [federated.internal]
    client_auth: client_assertion
    client_assertion_file: %[2]s/assertion.jwt
    scope: orders.read
    endpoints:
      write: {path: /write, scope: orders.write}
  obo:
    hosts: [obo.internal]
    grant_type: jwt_bearer
    client_id: pkjwt-ec
    client_key_file: %[2]s/ec.pem
    client_key_id: ""
    scope: orders.read
`

const jwtBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer"

func TestHydraWithoutSecrets(t *testing.T) {
	h := hydra.Start(t)
	dir := t.TempDir()
	rsaKey, unknownKey := testkeys.RSA(t), testkeys.RSA(t)
	ecKey, usersKey := testkeys.EC(t, elliptic.P256()), testkeys.EC(t, elliptic.P256())
	testkeys.Write(t, dir, "rsa.pem", testkeys.PKCS8(t, rsaKey))
	testkeys.Write(t, dir, "unknown.pem", testkeys.PKCS8(t, unknownKey))
	testkeys.Write(t, dir, "ec.pem", testkeys.PKCS8(t, ecKey))
	scopes := []string{"orders.read", "orders.write", "orders.a", "orders.b", "orders.c", "orders.d"}
	h.CreateClient(t, hydra.Client{ID: "pkjwt-rsa", AuthMethod: "private_key_jwt", Scopes: scopes,
		JWKS: []jose.JSONWebKey{testkeys.JWK(rsaKey, "rsa-1", "RS256")}})
	// The EC client is registered with what `tokenauthz jwks --key ec.pem` prints, as the README does.
	printed, err := tokens.PublicJWKS(filepath.Join(dir, "ec.pem"), "ec-1", "")
	if err != nil {
		t.Fatal(err)
	}
	var ecSet jose.JSONWebKeySet
	if err := json.Unmarshal(printed, &ecSet); err != nil {
		t.Fatal(err)
	}
	h.CreateClient(t, hydra.Client{ID: "pkjwt-ec", AuthMethod: "private_key_jwt", SigningAlg: "ES256", Scopes: scopes,
		JWKS: ecSet.Keys, GrantTypes: []string{jwtBearerGrant}})
	h.TrustIssuer(t, hydra.TrustedIssuer{Issuer: "https://users.example", Key: testkeys.JWK(usersKey, "users-1", "ES256"),
		Scopes: []string{"orders.read"}, ExpiresAt: time.Now().Add(24 * time.Hour)})
	writeAssertion := func() {
		t.Helper()
		tok := testkeys.SignJWT(t, rsaKey, jose.RS256, "rsa-1", testkeys.Claims("pkjwt-rsa", "pkjwt-rsa", h.TokenURL(), 10*time.Minute))
		testkeys.WriteFile(t, dir, "assertion.jwt", []byte(tok)) // renamed into place, as the kubelet swaps projected tokens
	}
	writeAssertion()
	client := startBroker(t, fmt.Sprintf(secretlessHydraConfig, h.Issuer(), dir)).client

	keys := []struct{ name, host, client string }{
		{"private-key-jwt-rsa-rs256", "rsa.internal", "pkjwt-rsa"},
		{"private-key-jwt-ec-es256", "ec.internal", "pkjwt-ec"},
	}
	for _, tt := range keys {
		t.Run(tt.name, func(t *testing.T) {
			tok := injected(t, client, request("GET", tt.host, "/", ""))
			if got := h.Introspect(t, tok); !got.Active || got.ClientID != tt.client || got.Scope != "orders.read" {
				t.Fatalf("introspection %+v, want an active token of %s", got, tt.client)
			}
		})
	}
	t.Run("fetches-in-the-same-second-sign-distinct-jtis", func(t *testing.T) {
		before := h.TokenRequests()
		start := time.Now()
		var wg sync.WaitGroup
		toks := make([]string, 4)
		for i, path := range []string{"/a", "/b", "/c", "/d"} {
			wg.Go(func() { toks[i] = injected(t, client, request("GET", "rsa.internal", path, "")) })
		}
		wg.Wait()
		if n := h.TokenRequests() - before; n != 4 {
			t.Fatalf("%d token requests, want 4", n)
		}
		t.Logf("4 fetches took %v", time.Since(start))
		for i, tok := range toks {
			if got := h.Introspect(t, tok); got.Scope != fmt.Sprintf("orders.%c", 'a'+i) {
				t.Errorf("token %d has scope %q", i, got.Scope)
			}
		}
	})
	t.Run("key-hydra-does-not-know-is-500", func(t *testing.T) {
		d := denied(t, client, request("GET", "unknown.internal", "/", ""))
		if d.Code != codes.Internal || d.HTTPStatus != 500 || d.Error != "client_config_rejected" {
			t.Fatalf("got %+v", d)
		}
	})
	t.Run("client-assertion-from-a-rotated-file", func(t *testing.T) {
		tok := injected(t, client, request("GET", "federated.internal", "/", ""))
		if got := h.Introspect(t, tok); got.ClientID != "pkjwt-rsa" || got.Scope != "orders.read" {
			t.Fatalf("introspection %+v", got)
		}
		// Hydra refuses a reused jti: a fetch with the old assertion fails.
		writeAssertion()
		before := h.TokenRequests()
		tok = injected(t, client, request("GET", "federated.internal", "/write", ""))
		if got := h.Introspect(t, tok); got.ClientID != "pkjwt-rsa" || got.Scope != "orders.write" {
			t.Fatalf("after rotation: introspection %+v", got)
		}
		injected(t, client, request("GET", "federated.internal", "/", ""))
		if n := h.TokenRequests() - before; n != 1 {
			t.Fatalf("%d token requests, want 1: the rotated assertion of the same subject keeps the cached token", n)
		}
	})
	t.Run("jwt-bearer-20-users-10-concurrent-checks-each-get-their-own-token", func(t *testing.T) {
		const users, perUser = 20, 10
		assertions := make([]string, users)
		for u := range users {
			assertions[u] = testkeys.SignJWT(t, usersKey, jose.ES256, "users-1",
				testkeys.Claims("https://users.example", fmt.Sprintf("user-%02d", u), h.TokenURL(), time.Hour))
		}
		before := h.TokenRequests()
		got := make([][perUser]string, users)
		var wg sync.WaitGroup
		for u := range users {
			for k := range perUser {
				wg.Go(func() { got[u][k] = injected(t, client, request("GET", "obo.internal", "/", assertions[u])) })
			}
		}
		wg.Wait()
		if n := h.TokenRequests() - before; n != users {
			t.Fatalf("%d token requests for %d users, want one each", n, users)
		}
		for u := range users {
			for _, tok := range got[u][1:] {
				if tok != got[u][0] {
					t.Fatalf("user %d got two different tokens", u)
				}
			}
			in := h.Introspect(t, got[u][0])
			if want := fmt.Sprintf("user-%02d", u); !in.Active || in.Sub != want || in.ClientID != "pkjwt-ec" || in.Scope != "orders.read" {
				t.Fatalf("user-%02d received %+v", u, in)
			}
		}
	})
	t.Run("jwt-bearer-without-a-bearer-token-is-401", func(t *testing.T) {
		d := denied(t, client, request("GET", "obo.internal", "/", ""))
		if d.Code != codes.Unauthenticated || d.HTTPStatus != 401 || d.Error != "missing_subject_token" {
			t.Fatalf("got %+v", d)
		}
	})
	t.Run("jwt-bearer-assertion-of-an-untrusted-issuer-is-401", func(t *testing.T) {
		forged := testkeys.SignJWT(t, unknownKey, jose.RS256, "users-1", testkeys.Claims("https://users.example", "mallory", h.TokenURL(), time.Hour))
		d := denied(t, client, request("GET", "obo.internal", "/", forged))
		if d.Code != codes.Unauthenticated || d.HTTPStatus != 401 || d.Error != "subject_token_rejected" {
			t.Fatalf("got %+v", d)
		}
	})
}
