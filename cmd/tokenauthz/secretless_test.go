package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokenauthz/tokenauthz/internal/testkeys"
)

const secretlessConfig = `
defaults:
  token_url: https://idp.example/token
  client_id: tokenauthz
  client_auth: private_key_jwt
  client_key_file: client-key.pem
  client_key_id: key-2026-01
  client_cert_file: client.crt
  grant_type: client_credentials
services:
  orders: {hosts: [orders.internal], scope: orders.read}
  mtls: {hosts: [mtls.internal], client_auth: tls_client_auth, client_cert_file: tls.crt, client_key_file: tls.key}
  federated: {hosts: [federated.internal], client_auth: client_assertion, client_assertion_file: idp-token,
              client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-spiffe"}
  obo: {hosts: [obo.internal], grant_type: jwt_bearer, token_params: {requested_token_use: on_behalf_of}}
  delegated: {hosts: [delegated.internal], grant_type: token_exchange, actor_token_file: jwt-svid}
  public: {hosts: [public.internal], client_auth: none, client_id: ""}
`

// TestCLISecretless: explain names each method's material and never prints
// it; validate names bad material.
func TestCLISecretless(t *testing.T) {
	dir := t.TempDir()
	key, tlsKey, ca := testkeys.RSA(t), testkeys.EC(t, elliptic.P256()), testkeys.NewCA(t, "test CA")
	keyFile := testkeys.Write(t, dir, "client-key.pem", testkeys.PKCS8(t, key))
	testkeys.Write(t, dir, "client.crt", ca.Issue(t, key, "tokenauthz", 2))
	tlsKeyFile := testkeys.Write(t, dir, "tls.key", testkeys.PKCS8(t, tlsKey))
	testkeys.Write(t, dir, "tls.crt", ca.Issue(t, tlsKey, "tokenauthz-mtls", 3))
	assertion := testkeys.SignJWT(t, key, "RS256", "", testkeys.Claims("tokenauthz", "tokenauthz", "aud", time.Hour))
	testkeys.WriteFile(t, dir, "idp-token", []byte(assertion))
	actor := testkeys.SignJWT(t, key, "RS256", "", testkeys.Claims("spire", "spiffe://example.org/tokenauthz", "aud", time.Hour))
	testkeys.WriteFile(t, dir, "jwt-svid", []byte(actor))
	config := filepath.Join(dir, "tokenauthz.yaml")
	if err := os.WriteFile(config, []byte(secretlessConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	never := []string{assertion, actor, "PRIVATE KEY"}
	for _, f := range []string{keyFile, tlsKeyFile} {
		data, _ := os.ReadFile(f)
		never = append(never, strings.Split(string(data), "\n")[1]) // the first line of key material
	}
	user := testkeys.SignJWT(t, key, "RS256", "", testkeys.Claims("users", "alice", "aud", time.Hour))
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"private-key-jwt", []string{"--url", "https://orders.internal/"},
			[]string{"client auth: private_key_jwt, key " + keyFile + " (RSA 2048, RS256, thumbprint ", "kid key-2026-01", "x5t#S256 of " + filepath.Join(dir, "client.crt") + " (subject CN=tokenauthz)", "aud the token endpoint URL, valid 1m0s; client_id tokenauthz"}},
		{"tls-client-auth", []string{"--url", "https://mtls.internal/"},
			[]string{"client auth: tls_client_auth, certificate " + filepath.Join(dir, "tls.crt") + " (subject CN=tokenauthz-mtls, issuer CN=test CA, serial 3", "key " + tlsKeyFile}},
		{"client-assertion", []string{"--url", "https://federated.internal/"},
			[]string{"client auth: client_assertion, the token in " + filepath.Join(dir, "idp-token") + " (redacted), client_assertion_type urn:ietf:params:oauth:client-assertion-type:jwt-spiffe"}},
		{"jwt-bearer-with-token-params", []string{"--url", "https://obo.internal/", "--header", "Authorization: Bearer " + user},
			[]string{"grant:     jwt_bearer", "grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion=<redacted, ", "requested_token_use=on_behalf_of (token_params)"}},
		{"actor-token", []string{"--url", "https://delegated.internal/", "--header", "Authorization: Bearer " + user},
			[]string{"actor_token: the token in " + filepath.Join(dir, "jwt-svid") + " (redacted), actor_token_type urn:ietf:params:oauth:token-type:jwt"}},
		{"none", []string{"--url", "https://public.internal/"}, []string{"client auth: none (no client credentials); client_id (none)"}},
		{"jwt-bearer-without-bearer-denies", []string{"--url", "https://obo.internal/"}, []string{"decision:  deny 401 missing_subject_token"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if code := run(append([]string{"explain", "--config", config}, tt.args...), &out, &out); code != 0 {
				t.Fatalf("exit %d\n%s", code, out.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, n := range append(never, user) {
				if strings.Contains(out.String(), n) {
					t.Errorf("output holds a credential (%d bytes):\n%s", len(n), out.String())
				}
			}
		})
	}
	t.Run("validate-names-bad-material", func(t *testing.T) {
		bad := strings.Replace(secretlessConfig, "client_key_file: client-key.pem", "client_key_file: client-key.pem\n  client_assertion_alg: ES256", 1)
		bad = strings.Replace(bad, "client_cert_file: tls.crt", "client_cert_file: missing.crt", 1)
		if err := os.WriteFile(config, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if code := run([]string{"validate", "--config", config}, &out, &out); code != 1 {
			t.Fatalf("exit %d, want 1\n%s", code, out.String())
		}
		for _, w := range []string{"client_assertion_alg: assertion algorithm does not fit the key: ES256 needs a key for EC P-256, the key is RSA 2048",
			"services.mtls.client_cert_file: unusable client certificate: open " + filepath.Join(dir, "missing.crt")} {
			if !strings.Contains(out.String(), w) {
				t.Errorf("output lacks %q:\n%s", w, out.String())
			}
		}
	})
}

// TestJWKS: the printed set holds the key's public half, as an IdP
// registers it, and no private part.
func TestJWKS(t *testing.T) {
	dir := t.TempDir()
	ec := testkeys.EC(t, elliptic.P256())
	keyFile := testkeys.Write(t, dir, "client-key.pem", testkeys.PKCS8(t, ec))
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"ec-key-with-kid", []string{"--key", keyFile, "--kid", "key-1"}, 0, `"kid": "key-1"`},
		{"alg-from-the-key", []string{"--key", keyFile}, 0, `"alg": "ES256"`},
		{"alg-that-does-not-fit", []string{"--key", keyFile, "--alg", "RS256"}, 1, "RS256 needs a key for RSA"},
		{"missing-key", []string{"--key", filepath.Join(dir, "none.pem")}, 1, "unusable client key"},
		{"no-key-flag", nil, 2, "--key FILE is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errs bytes.Buffer
			if code := run(append([]string{"jwks"}, tt.args...), &out, &errs); code != tt.wantCode {
				t.Fatalf("exit %d, want %d: %s%s", code, tt.wantCode, out.String(), errs.String())
			}
			if !strings.Contains(out.String()+errs.String(), tt.want) {
				t.Fatalf("output lacks %q: %s%s", tt.want, out.String(), errs.String())
			}
			if tt.wantCode != 0 {
				return
			}
			var set jose.JSONWebKeySet
			if err := json.Unmarshal(out.Bytes(), &set); err != nil || len(set.Keys) != 1 {
				t.Fatalf("not a JWK Set of one key: %v\n%s", err, out.String())
			}
			k := set.Keys[0]
			if !k.IsPublic() || k.Use != "sig" || !k.Key.(*ecdsa.PublicKey).Equal(&ec.PublicKey) || strings.Contains(out.String(), `"d"`) {
				t.Fatalf("JWK %+v: want the public signing key only", k)
			}
		})
	}
}
