package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const goodConfig = `
defaults:
  issuer: https://idp.example/
  client_id: tokenauthz
  client_secret: ${CLI_TEST_SECRET}
services:
  orders:
    hosts: [orders.internal]
    path_prefix: /v1
    grant_type: client_credentials
    scope: orders.read
    endpoints:
      create: {path: /orders, methods: [POST], scope: orders.write}
      history: {path: /orders/history, grant_type: token_exchange, audience: orders, token_url: https://idp.example/token}
`

// sharedCache turns the shared cache on (keys_file is written beside the config).
const sharedCache = `
cache:
  shared: {addresses: ["127.0.0.1:6379"], password: redis-pw, tls: {}, keys_file: cache-keys}
`

const badConfig = `
unmatched: maybe
defaults: {grant_typ: none}
services:
  orders:
    hosts: [orders.internal]
    grant_type: client_credentials
`

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokenauthz.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCLI(t *testing.T) {
	t.Setenv("CLI_TEST_SECRET", "very-secret-value")
	good, bad := writeConfig(t, goodConfig), writeConfig(t, badConfig)
	withShared := writeConfig(t, goodConfig+sharedCache)
	if err := os.WriteFile(filepath.Join(filepath.Dir(withShared), "cache-keys"), []byte("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		env      string // TOKENAUTHZ_CONFIG
		wantCode int
		want     []string // substrings of stdout+stderr
		never    []string
	}{
		{"validate-good", []string{"validate", "--config", good}, "", 0, []string{"ok (1 services)"}, nil},
		{"validate-from-env", []string{"validate"}, good, 0, []string{"ok (1 services)"}, nil},
		{"validate-lists-every-problem", []string{"validate", "--config", bad}, "", 1,
			[]string{"unmatched: \"maybe\"", "defaults.grant_typ: unknown key", "services.orders: grant_type client_credentials needs issuer or token_url, client_id, client_secret"}, nil},
		{"validate-without-config", []string{"validate"}, "", 2, []string{"--config FILE"}, nil},
		{"explain-client-credentials-endpoint", []string{"explain", "--config", good, "--method", "POST", "--url", "https://orders.internal/v1/orders"}, "", 0,
			[]string{"service:   orders", "endpoint:  create", "grant:     client_credentials", "scope:     orders.write", "token_endpoint of https://idp.example/.well-known/openid-configuration", "grant_type=client_credentials", "scope=orders.write", "secret from defaults.client_secret (redacted)", "cache:     in-process only"},
			[]string{"very-secret-value"}},
		{"explain-token-exchange-redacts-subject", []string{"explain", "--config", good, "--url", "https://orders.internal/v1/orders/history?page=2", "--header", "Authorization: Bearer user-token-123"}, "", 0,
			[]string{"endpoint:  history", "grant:     token_exchange", "POST https://idp.example/token", "audience=orders", "subject_token=<redacted, 14 bytes>", "subject_token_type=urn:ietf:params:oauth:token-type:access_token"},
			[]string{"user-token-123", "very-secret-value"}},
		{"explain-exchange-without-token-denies", []string{"explain", "--config", good, "--url", "https://orders.internal/v1/orders/history"}, "", 0,
			[]string{"decision:  deny 401 missing_subject_token", "cache:     in-process only"}, nil},
		{"explain-context-extension", []string{"explain", "--config", good, "--url", "http://anything/x", "--context", "service=orders", "--context", "endpoint=create"}, "", 0,
			[]string{"endpoint:  create", "scope:     orders.write"}, nil},
		{"explain-unknown-host-denies", []string{"explain", "--config", good, "--url", "https://nope.internal/"}, "", 0,
			[]string{"decision:  deny 403 no_matching_service"}, nil},
		{"validate-shared-cache", []string{"validate", "--config", withShared}, "", 0, []string{"ok (1 services)"}, nil},
		{"explain-shared-cache-on", []string{"explain", "--config", withShared, "--url", "https://orders.internal/v1/x"}, "", 0,
			[]string{`cache:     in-process, then shared: standalone Redis 127.0.0.1:6379, TLS, prefix "tokenauthz:", 1 keys in `},
			[]string{"AQEBAQEB", "redis-pw"}},
		{"explain-bad-url", []string{"explain", "--config", good, "--url", "/relative"}, "", 2, []string{"want an absolute URL"}, nil},
		{"version", []string{"version"}, "", 0, []string{"tokenauthz "}, nil},
		{"unknown-command", []string{"frobnicate", "--config", good}, "", 2, []string{"unknown command"}, nil},
		{"flag-of-another-command", []string{"validate", "--config", good, "--url", "http://x/"}, "", 2, []string{"flag provided but not defined: -url"}, nil},
		{"stray-argument", []string{"validate", "--config", good, "extra"}, "", 2, []string{`unexpected argument "extra"`}, nil},
		{"no-command", nil, "", 2, []string{"Usage:"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("TOKENAUTHZ_CONFIG", tt.env)
			var out bytes.Buffer
			code := run(tt.args, &out, &out)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d\n%s", code, tt.wantCode, out.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, n := range tt.never {
				if strings.Contains(out.String(), n) {
					t.Errorf("output contains %q", n)
				}
			}
		})
	}
}

// TestVersionOfABuiltBinary builds tokenauthz as `make build` does and runs
// `version`: the stamped version and commit must show.
func TestVersionOfABuiltBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "tokenauthz")
	build := exec.Command("go", "build", "-o", bin,
		"-ldflags", "-X main.buildVersion=v9.8.7 -X main.buildCommit=0123abcd", ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("version: %v\n%s", err, out)
	}
	if got := string(out); !strings.HasPrefix(got, "tokenauthz v9.8.7 commit ") || !strings.Contains(got, " go1.") {
		t.Fatalf("version printed %q", got)
	}
}
