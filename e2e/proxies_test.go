package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthz/tokenauthz/devidp"
)

// proxyConfig has one service per grant on the devidp of exchange_test.go,
// and one whose token endpoint is down.
const proxyConfig = `
defaults:
  issuer: %s
  client_id: tokenauthz
  client_secret: exchange-secret
services:
  open:
    hosts: [open.internal]
    grant_type: none
  down:
    hosts: [down.internal]
    token_url: %s
    grant_type: client_credentials
  orders:
    hosts: [orders.internal]
    grant_type: client_credentials
    scope: orders.read
  profile:
    hosts: [profile.internal]
    grant_type: token_exchange
    scope: profile.read
    audience: profile
`

// forwardAuthProxy is a proxy in front of an upstream that asks tokenauthz
// about each request, and how it differs from the others.
type forwardAuthProxy struct {
	name string
	// start runs the proxy before upstream, asking tokenauthz's HTTP
	// listener at authz, and returns its address.
	start func(t *testing.T, authz, upstream string) string
	// passes5xx: our 500 and 503 reach the client as they are; else the
	// client gets a 500 of the proxy's own (nginx).
	passes5xx bool
	// keepsCallerAuth: without a token from tokenauthz (grant_type none) the
	// caller's Authorization goes upstream (nginx); else it is removed (Caddy's
	// copy_headers).
	keepsCallerAuth bool
}

// TestForwardAuthProxies runs real nginx (auth_request) and Caddy
// (forward_auth) with the configurations of examples/, in front of a
// recording upstream: the upstream must see the broker's token, never the
// client's, and denials must reach the client with our status and body.
func TestForwardAuthProxies(t *testing.T) {
	idp := startDevIdP(t)
	broker := startBroker(t, fmt.Sprintf(proxyConfig, idp.Issuer(), closedURL(t))).app
	up := startUpstream(t)
	for _, p := range []forwardAuthProxy{
		{name: "nginx-auth-request", start: startNginx, keepsCallerAuth: true},
		{name: "caddy-forward-auth", start: startCaddy, passes5xx: true},
	} {
		t.Run(p.name, func(t *testing.T) {
			proxy := p.start(t, broker.HTTPAddr(), up.addr)
			testThroughProxy(t, idp, up, "http://"+proxy, p)
		})
	}
}

func testThroughProxy(t *testing.T, idp *devidp.IdP, up *upstream, proxyURL string, p forwardAuthProxy) {
	user := p.name
	userToken, err := idp.UserToken(user, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	allowed := []struct {
		name      string
		host      string
		uri       string
		bearer    string
		grant     string
		subject   string
		audience  []string
		wantScope []string
	}{
		{"client-credentials-token-replaces-the-client-token", "orders.internal", "/v1/orders?id=42", "client-token", devidp.GrantClientCredentials, "tokenauthz", nil, []string{"orders.read"}},
		{"exchanged-token-replaces-the-user-token", "profile.internal", "/me", userToken, devidp.GrantTokenExchange, user, []string{"profile"}, []string{"profile.read"}},
	}
	for _, tt := range allowed {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := up.requests()
			resp, body := send(t, proxyURL, tt.host, tt.uri, map[string]string{"Authorization": "Bearer " + tt.bearer})
			if resp.StatusCode != http.StatusOK || body != "upstream ok" {
				t.Fatalf("got %d %q, want the upstream's 200", resp.StatusCode, body)
			}
			n, got := up.requests()
			if n != before+1 {
				t.Fatalf("upstream got %d requests, want 1", n-before)
			}
			if got.URL.RequestURI() != tt.uri {
				t.Errorf("upstream got %s, want %s", got.URL.RequestURI(), tt.uri)
			}
			auth := got.Header.Values("Authorization")
			if len(auth) != 1 {
				t.Fatalf("upstream got Authorization %q, want exactly one", auth)
			}
			token, ok := strings.CutPrefix(auth[0], "Bearer ")
			if !ok || token == tt.bearer || strings.ContainsAny(token, " ,") {
				t.Fatalf("upstream got Authorization %q, want one bearer token of the broker's", auth[0])
			}
			rec := issuedFor(t, idp, token)
			if rec.GrantType != tt.grant || rec.Subject != tt.subject || !slices.Equal(rec.Scope, tt.wantScope) || !slices.Equal(rec.Audience, tt.audience) {
				t.Fatalf("upstream got a token issued as %+v", rec)
			}
		})
	}

	t.Run("no-grant-injects-nothing", func(t *testing.T) {
		resp, body := send(t, proxyURL, "open.internal", "/", map[string]string{"Authorization": "Bearer client-token"})
		if resp.StatusCode != http.StatusOK || body != "upstream ok" {
			t.Fatalf("got %d %q, want the upstream's 200", resp.StatusCode, body)
		}
		_, got := up.requests()
		want := []string(nil)
		if p.keepsCallerAuth {
			want = []string{"Bearer client-token"}
		}
		if auth := got.Header.Values("Authorization"); !slices.Equal(auth, want) {
			t.Fatalf("upstream got Authorization %q, want %q", auth, want)
		}
	})
	t.Run("token-endpoint-down", func(t *testing.T) {
		resp, body := send(t, proxyURL, "down.internal", "/", nil)
		if !p.passes5xx {
			if resp.StatusCode != http.StatusInternalServerError || strings.Contains(body, "token_endpoint_unavailable") {
				t.Fatalf("got %d %q, want the proxy's own 500", resp.StatusCode, body)
			}
			return
		}
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, `"error":"token_endpoint_unavailable"`) {
			t.Fatalf("got %d %q, want our 503", resp.StatusCode, body)
		}
	})

	denials := []struct {
		name    string
		host    string
		headers map[string]string
		status  int
		reason  string
	}{
		{"unknown-host-is-403", "nowhere.internal", map[string]string{"Authorization": "Bearer client-token"}, 403, "no_matching_service"},
		{"exchange-without-bearer-is-401", "profile.internal", nil, 401, "missing_subject_token"},
		{"exchange-of-a-foreign-token-is-401", "profile.internal", map[string]string{"Authorization": "Bearer client-token"}, 401, "subject_token_rejected"},
		{"client-forwarded-headers-cannot-choose-the-service", "nowhere.internal", map[string]string{
			"X-Forwarded-Host": "orders.internal", "X-Original-Host": "orders.internal",
			"X-Forwarded-Uri": "/v1", "X-Original-URI": "/v1", "X-Forwarded-Method": "GET",
		}, 403, "no_matching_service"},
	}
	for _, tt := range denials {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := up.requests()
			resp, body := send(t, proxyURL, tt.host, "/v1/orders", tt.headers)
			if n, _ := up.requests(); n != before {
				t.Fatal("a denied request reached the upstream")
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d; body %q", resp.StatusCode, tt.status, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content-type %q, want application/json", ct)
			}
			var d struct {
				Error     string `json:"error"`
				Message   string `json:"message"`
				RequestID string `json:"request_id"`
			}
			if err := json.Unmarshal([]byte(body), &d); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if d.Error != tt.reason || d.Message == "" || d.RequestID == "" {
				t.Fatalf("body %q, want error %q, a message and the proxy's request id", body, tt.reason)
			}
		})
	}
}

// send makes one request through the proxy, as host, and returns the
// response and its body.
func send(t *testing.T, proxyURL, host, uri string, headers map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", proxyURL+uri, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// startNginx runs examples/nginx/nginx.conf in the foreground, as one
// process, with everything under a temporary prefix.
func startNginx(t *testing.T, authz, upstream string) string {
	bin := proxyBinary(t, "nginx", "TOKENAUTHZ_NGINX", nil)
	return startProxy(t, "nginx", func(t *testing.T, dir string, port int) *exec.Cmd {
		conf := filepath.Join(dir, "nginx.conf")
		renderTemplate(t, filepath.Join(repoRoot(t), "examples", "nginx", "nginx.conf"), conf, struct{ Listen, Tokenauthz, Upstream string }{
			Listen: "127.0.0.1:" + strconv.Itoa(port), Tokenauthz: authz, Upstream: upstream,
		})
		return exec.Command(bin, "-p", dir+"/", "-c", conf, "-e", filepath.Join(dir, "error.log"),
			"-g", "daemon off; master_process off;")
	})
}

// startCaddy runs examples/caddy/Caddyfile, with Caddy's data and config
// directories in a temporary directory. A Caddy that scripts/tools.sh could
// not build skips the test.
func startCaddy(t *testing.T, authz, upstream string) string {
	failed := func() string {
		b, err := os.ReadFile(filepath.Join(repoRoot(t), ".tools", "stamps", "caddy.failed"))
		if err != nil {
			return ""
		}
		return "caddy could not be built by scripts/tools.sh, skipping: " + string(b)
	}
	bin := proxyBinary(t, "caddy", "TOKENAUTHZ_CADDY", failed)
	return startProxy(t, "caddy", func(t *testing.T, dir string, port int) *exec.Cmd {
		conf := filepath.Join(dir, "Caddyfile")
		renderTemplate(t, filepath.Join(repoRoot(t), "examples", "caddy", "Caddyfile"), conf, struct {
			Host, Tokenauthz, Upstream string
			Port                       int
		}{Host: "127.0.0.1", Port: port, Tokenauthz: authz, Upstream: upstream})
		cmd := exec.Command(bin, "run", "--config", conf, "--adapter", "caddyfile")
		cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
		return cmd
	})
}
