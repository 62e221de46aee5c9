package app

import (
	"crypto/elliptic"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokenauthz/tokenauthz/internal/testkeys"
)

// TestReadyzNamesServicesThatCannotAuthenticate: a client assertion file
// that is missing, then valid, then expired, as /readyz reports it.
func TestReadyzNamesServicesThatCannotAuthenticate(t *testing.T) {
	f := &fixture{idp: startIdP(t), path: filepath.Join(t.TempDir(), "tokenauthz.yaml")}
	dir := filepath.Dir(f.path)
	cfg := fmt.Sprintf(appConfig, f.idp.Issuer(), "orders.read") + `  federated:
    hosts: [federated.internal]
    grant_type: client_credentials
    client_auth: client_assertion
    client_assertion_file: idp-token
`
	if err := os.WriteFile(f.path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	f.serve(t, slog.LevelInfo)
	waitFor(t, "discovery", func() bool { return f.app.discovery.Ready(Issuers(f.app.Authz.Config())) })
	key := testkeys.EC(t, elliptic.P256())
	assertion := func(ttl time.Duration) []byte {
		return []byte(testkeys.SignJWT(t, key, jose.ES256, "", testkeys.Claims("app", "app", "aud", ttl)))
	}
	tests := []struct {
		name     string
		write    []byte // nil: leave the file as it is
		wantCode int
		want     string
	}{
		{"missing-file", nil, 503, "service federated: client_assertion_file " + filepath.Join(dir, "idp-token") + ": missing"},
		{"valid-assertion", assertion(time.Hour), 200, "ready"},
		{"expired-assertion", assertion(-time.Minute), 503, "service federated: client_assertion_file " + filepath.Join(dir, "idp-token") + ": the token expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.write != nil {
				testkeys.WriteFile(t, dir, "idp-token", tt.write)
			}
			code, body := f.get(t, "/readyz")
			if code != tt.wantCode || !strings.Contains(body, tt.want) {
				t.Fatalf("/readyz %d %q, want %d with %q", code, body, tt.wantCode, tt.want)
			}
		})
	}
}
