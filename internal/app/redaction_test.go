package app

import (
	"crypto/elliptic"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenauthz/tokenauthz/internal/testkeys"
)

const redactionConfig = `
listen: {grpc: 127.0.0.1:0, http: 127.0.0.1:0, admin: 127.0.0.1:0}
defaults: {issuer: %[1]s, client_id: app, client_secret: app-secret}
services:
  orders: {hosts: [orders.internal], grant_type: token_exchange, scope: orders.read}
  wrong: {hosts: [wrong.internal], grant_type: client_credentials, client_secret: wrong-secret-value}
  pkjwt: {hosts: [pkjwt.internal], grant_type: client_credentials, token_url: %[2]s, client_auth: private_key_jwt,
          client_key_file: client-key.pem, client_cert_file: client.crt}
  federated: {hosts: [federated.internal], grant_type: client_credentials, token_url: %[2]s, client_auth: client_assertion,
              client_assertion_file: idp-token}
  mtls: {hosts: [mtls.internal], grant_type: client_credentials, token_url: %[2]s, client_auth: tls_client_auth,
         client_cert_file: tls.crt, client_key_file: tls.key}
  delegated: {hosts: [delegated.internal], grant_type: token_exchange, actor_token_file: jwt-svid}
  obo: {hosts: [obo.internal], grant_type: jwt_bearer, token_url: %[2]s, client_auth: post}
`

// echoIdP is a token endpoint that refuses every request and echoes it,
// form and Authorization header, in its error_description: the worst an
// IdP can do with our credentials.
type echoIdP struct {
	mu    sync.Mutex
	forms []string // every client_assertion, actor_token and assertion it got
}

func (e *echoIdP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	e.mu.Lock()
	for _, k := range []string{"client_assertion", "actor_token", "assertion"} {
		if v := r.PostForm.Get(k); v != "" {
			e.forms = append(e.forms, v)
		}
	}
	e.mu.Unlock()
	w.WriteHeader(http.StatusUnauthorized)
	json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client",
		"error_description": "refused " + r.PostForm.Encode() + " with " + r.Header.Get("Authorization")})
}

// pemBody is every base64 line of a PEM file: any of them in a log would
// be key material.
func pemBody(t *testing.T, path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for line := range strings.Lines(string(data)) {
		if line = strings.TrimSpace(line); len(line) >= 40 && !strings.HasPrefix(line, "-----") {
			out = append(out, line)
		}
	}
	return out
}

// fragments cuts a credential into 24-byte pieces: error text is clipped, so
// a leak may hold only part of a long assertion.
func fragments(c string) []string {
	const n = 24
	if len(c) <= n {
		return []string{c}
	}
	var out []string
	for i := 0; i+n <= len(c); i += n {
		out = append(out, c[i:i+n])
	}
	return out
}

// TestNoCredentialInLogsMetricsOrDenials runs allowed and denied checks with
// debug logging on, then scans logs, /metrics, every denial body and the
// admin listener (status page, status.json, explain answers, a rejected
// reload) for the client secrets, keys, assertions, actor tokens, the
// callers' tokens and the issued token, against an IdP that echoes what it
// gets.
func TestNoCredentialInLogsMetricsOrDenials(t *testing.T) {
	f := &fixture{idp: startIdP(t), path: filepath.Join(t.TempDir(), "tokenauthz.yaml")}
	dir := filepath.Dir(f.path)
	echo := &echoIdP{}
	echoSrv := httptest.NewServer(echo)
	t.Cleanup(echoSrv.Close)
	key, tlsKey, ca := testkeys.RSA(t), testkeys.EC(t, elliptic.P256()), testkeys.NewCA(t, "test CA")
	keyFile := testkeys.Write(t, dir, "client-key.pem", testkeys.PKCS8(t, key))
	testkeys.Write(t, dir, "client.crt", ca.Issue(t, key, "app", 2))
	tlsKeyFile := testkeys.Write(t, dir, "tls.key", testkeys.PKCS8(t, tlsKey))
	testkeys.Write(t, dir, "tls.crt", ca.Issue(t, tlsKey, "app", 3))
	assertion := testkeys.SignJWT(t, key, "RS256", "", testkeys.Claims("app", "app", echoSrv.URL, time.Hour))
	testkeys.WriteFile(t, dir, "idp-token", []byte(assertion))
	actor, err := f.idp.UserToken("spiffe://example.org/app", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	testkeys.WriteFile(t, dir, "jwt-svid", []byte(actor))
	if err := os.WriteFile(f.path, fmt.Appendf(nil, redactionConfig, f.idp.Issuer(), echoSrv.URL), 0o600); err != nil {
		t.Fatal(err)
	}
	f.serve(t, slog.LevelDebug)
	alice, err := f.idp.UserToken("alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	credentials := []string{"app-secret", "wrong-secret-value", alice, "garbage-caller-token", assertion, actor}
	credentials = append(credentials, pemBody(t, keyFile)...)
	credentials = append(credentials, pemBody(t, tlsKeyFile)...)
	var bodies []string
	allowed := 0
	for _, c := range []struct{ host, bearer string }{
		{"orders.internal", alice},
		{"orders.internal", "garbage-caller-token"},
		{"wrong.internal", "garbage-caller-token"},
		{"pkjwt.internal", ""},
		{"federated.internal", ""},
		{"mtls.internal", ""},
		{"delegated.internal", alice},
		{"obo.internal", alice},
	} {
		d := f.decide(t, c.host, c.bearer)
		if d.Allowed() {
			allowed++
			credentials = append(credentials, strings.TrimPrefix(d.Value, "Bearer "))
		} else {
			bodies = append(bodies, string(d.Body()))
		}
	}
	if len(bodies) != 6 || allowed != 2 {
		t.Fatalf("want two allows and six denials, got denials %v", bodies)
	}
	echo.mu.Lock()
	credentials = append(credentials, echo.forms...) // the signed client assertion among them
	echoed := len(echo.forms)
	echo.mu.Unlock()
	if echoed != 3 { // private_key_jwt's and client_assertion's assertions, obo's
		t.Fatalf("the echoing IdP got %d assertions, want 3", echoed)
	}
	// A reload rejected whose file holds a new secret: its error is on
	// the status page and in the log.
	rejected := readFile(t, f.path) + "  extra: {hosts: [extra.internal], client_secret: rejected-secret-value, bogus_key: 1}\n"
	writeFile(t, f.path, rejected)
	if f.app.Reload(f.path) == nil {
		t.Fatal("reload with an unknown key accepted")
	}
	credentials = append(credentials, "rejected-secret-value")
	// The admin listener: the page, its JSON, and the explain form asked
	// about every request above with the caller's token in its headers.
	var admin []string
	for _, c := range []struct{ host, bearer string }{
		{"orders.internal", alice}, {"orders.internal", "garbage-caller-token"}, {"wrong.internal", ""}, {"pkjwt.internal", ""},
		{"federated.internal", ""}, {"mtls.internal", ""}, {"delegated.internal", alice}, {"obo.internal", alice},
	} {
		form := url.Values{"method": {"GET"}, "url": {"https://" + c.host + "/"}, "principal": {"spiffe://example.org/caller"},
			"headers": {"authorization: Bearer " + c.bearer + "\nx-request-id: explain-1"}}
		resp, err := http.PostForm("http://"+f.app.AdminAddr()+"/status", form)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		admin = append(admin, string(body))
	}
	for _, path := range []string{"/status", "/status.json"} {
		_, body := f.admin(t, path)
		admin = append(admin, body)
	}
	adminText := strings.Join(admin, "\n")
	for _, want := range []string{"subject_token=&lt;redacted, ", "actor_token: the token in ", "private_key_jwt", "tls_client_auth",
		"client_config_rejected", "subject_token_rejected", "bogus_key: unknown key"} {
		if !strings.Contains(adminText, want) {
			t.Errorf("the admin pages lack %s: the scan saw less than it should", want)
		}
	}
	_, metrics := f.get(t, "/metrics")
	for _, where := range []struct{ name, text string }{
		{"logs", f.logs.String()}, {"metrics", metrics}, {"denial bodies", strings.Join(bodies, "\n")},
		{"the admin listener's pages", adminText},
	} {
		for _, c := range credentials {
			for _, frag := range fragments(c) {
				if strings.Contains(where.text, frag) {
					t.Errorf("%s contain a credential (%d bytes) or part of it", where.name, len(c))
					break
				}
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
