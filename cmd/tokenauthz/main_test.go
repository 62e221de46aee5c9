package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthz/tokenauthz/devidp"
	"github.com/tokenauthz/tokenauthz/internal/app"
	"github.com/tokenauthz/tokenauthz/internal/apptest"
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

// startApp serves the config text in process until the test ends.
func startApp(t *testing.T, text string) *app.App {
	t.Helper()
	return apptest.Parse(t, "cli.yaml", text)
}

// healthTargets are gRPC addresses for `tokenauthz health`: a ready
// tokenauthz (real devidp), one whose issuer is unreachable, a listener
// that accepts and never answers, and a port nothing listens on.
func healthTargets(t *testing.T) (ready, unready, silent, closed string) {
	t.Helper()
	idp, err := devidp.Start(context.Background(), devidp.Options{Clients: []devidp.Client{{ID: "cli", Secret: "cli-secret"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	r := startApp(t, fmt.Sprintf(serveConfig, idp.Issuer()))
	u := startApp(t, fmt.Sprintf(serveConfig, "http://127.0.0.1:1/"))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get("http://" + r.HTTPAddr() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("tokenauthz with a reachable issuer not ready")
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l2.Close()
	return r.GRPCAddr(), u.GRPCAddr(), l.Addr().String(), l2.Addr().String()
}

func TestCLI(t *testing.T) {
	t.Setenv("CLI_TEST_SECRET", "very-secret-value")
	good, bad := writeConfig(t, goodConfig), writeConfig(t, badConfig)
	empty := writeConfig(t, "unmatched: deny\n")
	dotted := writeConfig(t, "services: {orders: {hosts: [orders.internal.]}}\n")
	typo := writeConfig(t, strings.Replace(goodConfig, "methods: [POST]", "methods: [PSOT]", 1))
	extension := writeConfig(t, strings.Replace(goodConfig, "methods: [POST]", "methods: [POST, ext:PURGE]", 1))
	insecure := writeConfig(t, strings.Replace(goodConfig, "issuer: https://idp.example/", "token_url: http://idp.internal/token", 1))
	insecureAllowed := writeConfig(t, strings.Replace(goodConfig, "issuer: https://idp.example/", "token_url: http://idp.internal/token\n  allow_insecure_http: true", 1))
	ready, unready, silent, closed := healthTargets(t)
	const authzService = "envoy.service.auth.v3.Authorization"
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
		{"validate-good-has-no-warning", []string{"validate", "--config", good}, "", 0, []string{"ok (1 services)"}, []string{"warning:"}},
		{"validate-no-services-warns-and-passes", []string{"validate", "--config", empty}, "", 0,
			[]string{"warning: " + empty + ": services: no services configured: every request is unmatched and denied 403", "ok (0 services)"}, nil},
		{"validate-trailing-dot-warns-and-passes", []string{"validate", "--config", dotted}, "", 0,
			[]string{`warning: ` + dotted + `: services.orders.hosts[0]: "orders.internal." is matched as "orders.internal"`, "ok (1 services)"}, nil},
		{"validate-unknown-method", []string{"validate", "--config", typo}, "", 1,
			[]string{`services.orders.endpoints.create.methods: "PSOT" is not a method of the IANA HTTP Method Registry`}, []string{"ok ("}},
		{"validate-extension-method", []string{"validate", "--config", extension}, "", 0, []string{"ok (1 services)"}, []string{"warning:"}},
		{"validate-insecure-token-url", []string{"validate", "--config", insecure}, "", 1,
			[]string{`defaults.token_url: "http://idp.internal/token" is plain http to a host that is not loopback`, "allow_insecure_http: true"}, []string{"ok ("}},
		{"validate-insecure-token-url-allowed", []string{"validate", "--config", insecureAllowed}, "", 0, []string{"ok (1 services)"}, nil},
		{"explain-client-credentials-endpoint", []string{"explain", "--config", good, "--method", "POST", "--url", "https://orders.internal/v1/orders"}, "", 0,
			[]string{"service:   orders", "endpoint:  create", "grant:     client_credentials", "scope:     orders.write", "token_endpoint of https://idp.example/.well-known/openid-configuration", "grant_type=client_credentials", "scope=orders.write", "secret from defaults.client_secret (redacted)", "cache:     in-process only"},
			[]string{"very-secret-value"}},
		{"explain-token-exchange-redacts-subject", []string{"explain", "--config", good, "--url", "https://orders.internal/v1/orders/history?page=2", "--header", "Authorization: Bearer user-token-123"}, "", 0,
			[]string{"endpoint:  history", "grant:     token_exchange", "POST https://idp.example/token", "audience=orders", "subject_token=<redacted, 14 bytes>", "subject_token_type=urn:ietf:params:oauth:token-type:access_token"},
			[]string{"user-token-123", "very-secret-value"}},
		{"explain-exchange-without-token-denies", []string{"explain", "--config", good, "--url", "https://orders.internal/v1/orders/history"}, "", 0,
			[]string{"decision:  deny 401 missing_subject_token", "cache:     in-process only"}, nil},
		{"explain-context-extension", []string{"explain", "--config", good, "--method", "POST", "--url", "http://anything/x", "--context", "service=orders", "--context", "endpoint=create"}, "", 0,
			[]string{"endpoint:  create", "scope:     orders.write"}, []string{"note:"}},
		{"explain-context-extension-overrides-methods", []string{"explain", "--config", good, "--url", "http://anything/x", "--context", "service=orders", "--context", "endpoint=create"}, "", 0,
			[]string{"endpoint:  create (path /v1/orders, methods POST)", "note:      the endpoint context extension chose create and overrides its methods: GET is not among POST", "scope:     orders.write"}, nil},
		{"explain-context-extension-any-method", []string{"explain", "--config", good, "--method", "DELETE", "--url", "http://anything/x", "--context", "service=orders", "--context", "endpoint=history"}, "", 0,
			[]string{"endpoint:  history (path /v1/orders/history, methods any)"}, []string{"note:"}},
		{"explain-matched-by-method-has-no-note", []string{"explain", "--config", good, "--url", "https://orders.internal/v1/orders"}, "", 0,
			[]string{"endpoint:  none matched; the service's own settings apply", "scope:     orders.read"}, []string{"note:"}},
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
		{"help", []string{"help"}, "", 0, []string{"Usage:", "tokenauthz serve ", "tokenauthz health ", "tokenauthz help [SUBCOMMAND]"}, nil},
		{"help-long-flag", []string{"--help"}, "", 0, []string{"Usage:", "tokenauthz validate --config FILE"}, nil},
		{"help-short-flag", []string{"-h"}, "", 0, []string{"Usage:", "tokenauthz explain "}, nil},
		{"help-serve-lists-its-flags", []string{"help", "serve"}, "", 0,
			[]string{"Usage: tokenauthz serve --config FILE", "-drain duration", "(default 5s)", "-grpc-addr", "-http-addr", "-admin-addr", "-log-level", "-config"}, []string{"-method", "  -addr string"}},
		{"help-explain-lists-its-flags", []string{"help", "explain"}, "", 0, []string{"-method", "-url", "-header", "-context"}, []string{"-drain"}},
		{"help-health-lists-its-flags", []string{"help", "health"}, "", 0, []string{"-addr string", "(default \"127.0.0.1:9001\")", "-service", "-timeout duration"}, []string{"-config"}},
		{"help-version-has-no-flags", []string{"help", "version"}, "", 0, []string{"Usage: tokenauthz version"}, []string{"Flags:"}},
		{"help-unknown-subcommand", []string{"help", "frobnicate"}, "", 2, []string{"want one subcommand name"}, nil},
		{"subcommand-help-flag", []string{"validate", "-h"}, "", 0, []string{"Usage: tokenauthz validate --config FILE", "-config"}, []string{"flag: help requested"}},
		{"bad-flag-points-to-help", []string{"serve", "--drian", "1s"}, "", 2, []string{"flag provided but not defined: -drian", "run 'tokenauthz help serve'"}, nil},
		{"health-serving", []string{"health", "--addr", ready}, "", 0, []string{"SERVING"}, []string{"NOT_SERVING"}},
		{"health-ext-authz-serving", []string{"health", "--addr", ready, "--service", authzService}, "", 0, []string{"SERVING"}, []string{"NOT_SERVING"}},
		{"health-issuer-unreachable", []string{"health", "--addr", unready}, "", 1, []string{`health ` + unready + ` service "": NOT_SERVING`}, nil},
		{"health-ext-authz-issuer-unreachable", []string{"health", "--addr", unready, "--service", authzService}, "", 1, []string{"NOT_SERVING"}, nil},
		{"health-unknown-service", []string{"health", "--addr", ready, "--service", "nope"}, "", 1, []string{"NotFound"}, nil},
		{"health-nothing-listening", []string{"health", "--addr", closed}, "", 1, []string{"connection refused"}, nil},
		{"health-timeout", []string{"health", "--addr", silent, "--timeout", "300ms"}, "", 1, []string{"DeadlineExceeded"}, nil},
		{"health-bad-timeout", []string{"health", "--timeout", "soon"}, "", 2, []string{`invalid value "soon" for flag -timeout`}, nil},
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

// TestVersionOfABuiltBinary runs `version` of the binary built as `make
// build` does: the stamped version and commit must show.
func TestVersionOfABuiltBinary(t *testing.T) {
	out, err := exec.Command(binary(t), "version").CombinedOutput()
	if err != nil {
		t.Fatalf("version: %v\n%s", err, out)
	}
	if got := string(out); !strings.HasPrefix(got, "tokenauthz v9.8.7 commit ") || !strings.Contains(got, " go1.") {
		t.Fatalf("version printed %q", got)
	}
}
