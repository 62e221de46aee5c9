package config

import (
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthz/tokenauthz/scopes"
	"github.com/tokenauthz/tokenauthz/tokens"
)

func TestLoadSecretless(t *testing.T) {
	cfg, err := Load(filepath.Join("testdata", "secretless.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	creds := map[string]*Credentials{}
	for _, svc := range cfg.Routes.Services() {
		creds[svc.Name] = cfg.Credentials(&svc.Settings)
		for _, ep := range svc.Endpoints {
			creds[svc.Name+"/"+ep.Name] = cfg.Credentials(&ep.Settings)
		}
	}
	abs := func(p string) string { return filepath.Join("testdata", p) }
	tests := []struct {
		level  string
		auth   []string // in its String()
		actor  string
		params []tokens.Param
	}{
		{"orders", []string{"private_key_jwt", abs("keys/rsa.pem"), "RSA 2048", "PS256", "kid key-2026-01", "x5t#S256 of " + abs("keys/rsa.crt"), "CN=tokenauthz-rsa-test"}, "", nil},
		{"orders/history", []string{"private_key_jwt", "aud https://login.example/tenant/token"}, "", nil},
		{"mtls", []string{"tls_client_auth", abs("keys/ec.crt"), "subject CN=tokenauthz-test", abs("keys/ec.pem")}, "", nil},
		{"federated", []string{"client_assertion", abs("tokens/idp-token"), "jwt-spiffe"}, "", nil},
		{"obo", []string{"private_key_jwt"}, "", []tokens.Param{{Name: "a_first", Value: "1"}, {Name: "requested_token_use", Value: "on_behalf_of"}}},
		{"delegated", []string{"private_key_jwt"}, abs("tokens/jwt-svid"), nil},
		{"public", []string{"none"}, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.level, func(t *testing.T) {
			c := creds[tt.level]
			if c == nil || c.Auth == nil {
				t.Fatalf("no credentials")
			}
			for _, want := range tt.auth {
				if !strings.Contains(c.Auth.String(), want) {
					t.Errorf("auth %q lacks %q", c.Auth, want)
				}
			}
			if got := ""; c.Actor != nil {
				got = c.Actor.Path
				if got != tt.actor {
					t.Errorf("actor %q, want %q", got, tt.actor)
				}
			} else if tt.actor != "" {
				t.Errorf("no actor, want %s", tt.actor)
			}
			if !reflect.DeepEqual(c.Params, tt.params) {
				t.Errorf("params %v, want %v", c.Params, tt.params)
			}
		})
	}
	if creds["orders"].Auth != creds["billing"].Auth || creds["orders"].Auth == creds["orders/history"].Auth {
		t.Error("levels with equal settings should share one ClientAuth, and only those")
	}
	unusable := cfg.Unusable(time.Now())
	if len(unusable) != 2 || !strings.HasPrefix(unusable[0], "service delegated: actor_token_file "+abs("tokens/jwt-svid")+": missing") ||
		!strings.HasPrefix(unusable[1], "service federated: client_assertion_file "+abs("tokens/idp-token")+": missing") {
		t.Errorf("Unusable = %q", unusable)
	}
	if s := cfg.Routes.Services()[slices.IndexFunc(cfg.Routes.Services(), func(s *scopes.Service) bool { return s.Name == "obo" })].Settings; s.Grant != scopes.GrantJWTBearer {
		t.Errorf("obo grant %s", s.Grant)
	}
}
