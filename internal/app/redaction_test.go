package app

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const redactionConfig = `
listen: {grpc: 127.0.0.1:0, http: 127.0.0.1:0}
defaults: {issuer: %s, client_id: app, client_secret: app-secret}
services:
  orders: {hosts: [orders.internal], grant_type: token_exchange, scope: orders.read}
  wrong: {hosts: [wrong.internal], grant_type: client_credentials, client_secret: wrong-secret-value}
`

// TestNoCredentialInLogsMetricsOrDenials runs allowed and denied checks with
// debug logging on, then scans logs, /metrics and every denial body for the
// client secrets, the callers' tokens and the issued token.
func TestNoCredentialInLogsMetricsOrDenials(t *testing.T) {
	f := &fixture{idp: startIdP(t), path: filepath.Join(t.TempDir(), "tokenauthz.yaml")}
	if err := os.WriteFile(f.path, fmt.Appendf(nil, redactionConfig, f.idp.Issuer()), 0o600); err != nil {
		t.Fatal(err)
	}
	f.serve(t, slog.LevelDebug)
	alice, err := f.idp.UserToken("alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	credentials := []string{"app-secret", "wrong-secret-value", alice, "garbage-caller-token"}
	var bodies []string
	for _, c := range []struct{ host, bearer string }{
		{"orders.internal", alice},
		{"orders.internal", "garbage-caller-token"},
		{"wrong.internal", "garbage-caller-token"},
	} {
		d := f.decide(t, c.host, c.bearer)
		if d.Allowed() {
			credentials = append(credentials, strings.TrimPrefix(d.Value, "Bearer "))
		} else {
			bodies = append(bodies, string(d.Body()))
		}
	}
	if len(bodies) != 2 || len(credentials) != 5 {
		t.Fatalf("want one allow and two denials, got denials %v", bodies)
	}
	_, metrics := f.get(t, "/metrics")
	for _, where := range []struct{ name, text string }{
		{"logs", f.logs.String()}, {"metrics", metrics}, {"denial bodies", strings.Join(bodies, "\n")},
	} {
		for _, c := range credentials {
			if strings.Contains(where.text, c) {
				t.Errorf("%s contain a credential (%d bytes)", where.name, len(c))
			}
		}
	}
	for _, want := range []string{`"reason":"token_injected"`, `"reason":"subject_token_rejected"`, `"reason":"client_config_rejected"`, `"msg":"token request"`,
		`"grant":"token_exchange"`, `tokenauthz_token_requests_total{grant="token_exchange"`, `tokenauthz_issuer_discovered{issuer=`} {
		if !strings.Contains(f.logs.String()+metrics, want) {
			t.Errorf("logs and metrics lack %s: the scan saw less than it should", want)
		}
	}
	if urn := "urn:ietf:params:oauth:grant-type:token-exchange"; strings.Contains(f.logs.String(), urn) {
		t.Errorf("logs name the grant %s, not token_exchange as the metrics do", urn)
	}
}
