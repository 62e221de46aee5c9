package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthz/tokenauthz/authz"
	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/internal/status"
)

// statusConfig has a service of each kind the page tells apart: endpoints
// with their own grant and client authentication, route claims and
// callers, an unreachable issuer, no grant.
const statusConfig = `
listen: {grpc: 127.0.0.1:0, http: 127.0.0.1:0, admin: 127.0.0.1:0}
defaults: {issuer: %s, client_id: app, client_secret: app-secret}
services:
  orders:
    hosts: [orders.internal, "orders.internal:8443"]
    path_prefix: /v1
    grant_type: client_credentials
    scope: orders.read
    endpoints:
      create: {path: /orders, methods: [POST], scope: orders.write}
      history: {path: /orders/history, grant_type: token_exchange, audience: orders, client_auth: post}
  billing:
    hosts: [billing.internal]
    routes: [HTTPRoute/shop/billing]
    grant_type: client_credentials
    client_id: billing
    client_secret: billing-secret
    callers: ["spiffe://cluster.local/ns/shop/*"]
    scope: [billing.read, billing.write]
  down:
    hosts: [down.internal]
    issuer: http://127.0.0.1:1/
    grant_type: client_credentials
  public:
    hosts: [public.internal]
`

// admin GETs path from the admin listener.
func (f *fixture) admin(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get("http://" + f.app.AdminAddr() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// lookup walks a decoded JSON document along path: object keys, list
// indexes, or, in a list of objects, the one whose "name" is the step.
func lookup(doc any, path string) (any, bool) {
	for step := range strings.SplitSeq(path, "/") {
		switch v := doc.(type) {
		case map[string]any:
			var ok bool
			if doc, ok = v[step]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(step)
			if err == nil && i < len(v) {
				doc = v[i]
				continue
			}
			found := false
			for _, item := range v {
				if m, ok := item.(map[string]any); ok && m["name"] == step {
					doc, found = item, true
					break
				}
			}
			if !found {
				return nil, false
			}
		default:
			return nil, false
		}
	}
	return doc, true
}

// TestStatusJSON checks /status.json field by field against statusConfig
// after known checks and a rejected reload.
func TestStatusJSON(t *testing.T) {
	f := &fixture{idp: startIdP(t), path: filepath.Join(t.TempDir(), "tokenauthz.yaml")}
	if err := os.WriteFile(f.path, fmt.Appendf(nil, statusConfig, f.idp.Issuer()), 0o600); err != nil {
		t.Fatal(err)
	}
	f.serve(t, slog.LevelInfo)
	checks := []struct {
		in   authz.Input
		want authz.Reason
	}{
		{authz.Input{RequestID: "o-1", Method: "GET", Host: "orders.internal", Path: "/v1/orders/42"}, authz.ReasonTokenInjected},
		{authz.Input{RequestID: "o-2", Method: "GET", Host: "orders.internal", Path: "/v1/orders/42"}, authz.ReasonTokenInjected},
		{authz.Input{RequestID: "o-3", Method: "GET", Host: "orders.internal", Path: "/v1/orders/43"}, authz.ReasonTokenInjected},
		{authz.Input{RequestID: "p-1", Method: "GET", Host: "public.internal", Path: "/"}, authz.ReasonNoGrant},
		{authz.Input{RequestID: "b-1", Method: "GET", Host: "billing.internal", Path: "/invoices"}, authz.ReasonCallerNotAllowed},
		{authz.Input{RequestID: "d-1", Method: "GET", Host: "down.internal", Path: "/"}, authz.ReasonUnavailable},
		{authz.Input{RequestID: "u-1", Method: "GET", Host: "nowhere.internal", Path: "/x"}, authz.ReasonNoMatch},
	}
	for _, c := range checks {
		if d := f.app.Authz.Decide(context.Background(), c.in); d.Reason != c.want {
			t.Fatalf("%s: %s (%s), want %s", c.in.RequestID, d.Reason, d.Message, c.want)
		}
	}
	before := time.Now()
	if err := os.WriteFile(f.path, []byte("listen: {grpc: 127.0.0.1:0}\nservicez: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if f.app.Reload(f.path) == nil {
		t.Fatal("reload of an invalid file accepted")
	}

	resp, body := f.admin(t, "/status.json")
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "application/json" {
		t.Fatalf("/status.json: %d %s", resp.StatusCode, ct)
	}
	strict := json.NewDecoder(strings.NewReader(body))
	strict.DisallowUnknownFields()
	var snap status.Snapshot
	if err := strict.Decode(&snap); err != nil {
		t.Fatalf("/status.json does not decode as status.Snapshot: %v", err)
	}
	var doc any
	json.Unmarshal([]byte(body), &doc)
	svc := "services/orders/"
	fields := []struct{ path, want string }{
		{"config/file", f.path},
		{"config/last_reload/trigger", "call"},
		{"config/last_reload/ok", "false"},
		{"ready", "false"},
		{"issuers/0/issuer", f.idp.Issuer()},
		{"issuers/0/discovered", "true"},
		{"issuers/0/last_error", ""},
		{"issuers/1/issuer", "http://127.0.0.1:1/"},
		{"issuers/1/discovered", "false"},
		{"unmatched", "deny"},
		{"shared_cache", "<nil>"},
		{svc + "hosts", "[orders.internal orders.internal:8443]"},
		{svc + "path_prefix", "/v1"},
		{svc + "routes", "[]"},
		{svc + "settings/grant", "client_credentials"},
		{svc + "settings/scope", "[orders.read]"},
		{svc + "settings/client_id", "app"},
		{svc + "settings/client_auth", "basic"},
		{svc + "settings/client_auth_detail", "basic (HTTP Basic), client secret from defaults.client_secret (redacted)"},
		{svc + "settings/issuer", f.idp.Issuer()},
		{svc + "settings/token_url", ""},
		{svc + "settings/callers", "<nil>"},
		{svc + "settings/header", "authorization"},
		{svc + "endpoints/0/name", "history"}, // longest path first, as matched
		{svc + "endpoints/history/path", "/v1/orders/history"},
		{svc + "endpoints/history/methods", "[]"},
		{svc + "endpoints/history/settings/grant", "token_exchange"},
		{svc + "endpoints/history/settings/audience", "orders"},
		{svc + "endpoints/history/settings/client_auth", "post"},
		{svc + "endpoints/history/settings/client_auth_detail", "post (in the form), client secret from defaults.client_secret (redacted)"},
		{svc + "endpoints/create/path", "/v1/orders"},
		{svc + "endpoints/create/methods", "[POST]"},
		{svc + "endpoints/create/settings/scope", "[orders.write]"},
		{svc + "cache/tokens", "1"},
		{svc + "cache/keys_in_backoff", "0"},
		{svc + "cache/injected", "3"},
		{svc + "cache/misses", "1"},
		{svc + "cache/hit_ratio", fmt.Sprint(2.0 / 3)},
		{"services/billing/routes", "[HTTPRoute/shop/billing]"},
		{"services/billing/path_prefix", "/"},
		{"services/billing/settings/client_id", "billing"},
		{"services/billing/settings/scope", "[billing.read billing.write]"},
		{"services/billing/settings/callers", "[spiffe://cluster.local/ns/shop/*]"},
		{"services/billing/cache/injected", "0"},
		{"services/billing/cache/hit_ratio", "<nil>"},
		{"services/down/settings/issuer", "http://127.0.0.1:1/"},
		{"services/down/cache/tokens", "0"},
		{"services/down/cache/keys_in_backoff", "1"},
		{"services/down/cache/next_refresh", "<nil>"},
		{"services/public/settings/grant", "none"},
		{"services/public/settings/client_id", ""},
		{"services/public/settings/client_auth", ""},
		{"services/public/settings/scope", "[]"},
		{"denials/0/request_id", "u-1"}, // newest first
		{"denials/0/reason", "no_matching_service"},
		{"denials/0/status", "403"},
		{"denials/0/service", ""},
		{"denials/0/message", `no service matches host "nowhere.internal" path "/x"`},
		{"denials/1/request_id", "d-1"},
		{"denials/1/service", "down"},
		{"denials/1/reason", "token_endpoint_unavailable"},
		{"denials/1/status", "503"},
		{"denials/2/request_id", "b-1"},
		{"denials/2/service", "billing"},
		{"denials/2/reason", "caller_not_allowed"},
		{"denials/3", "<missing>"},
	}
	for _, fl := range fields {
		v, ok := lookup(doc, fl.path)
		got := fmt.Sprint(v)
		if !ok {
			got = "<missing>"
		}
		if got != fl.want {
			t.Errorf("%s = %s, want %s", fl.path, got, fl.want)
		}
	}
	contains := []struct{ name, got, want string }{
		{"version", snap.Version, "tokenauthz "},
		{"last-reload-error", snap.Config.LastReload.Error, "servicez: unknown key"},
		{"not-ready", snap.NotReady, "issuer http://127.0.0.1:1/: "},
		{"pending-issuer-error", snap.Issuers[1].LastError, "connection refused"},
		{"denial-message", snap.Denials[1].Message, `token request for service "down"`},
		{"denial-message", snap.Denials[2].Message, "admits only listed callers"},
	}
	for _, c := range contains {
		if !strings.Contains(c.got, c.want) {
			t.Errorf("%s = %q, want it to hold %q", c.name, c.got, c.want)
		}
	}
	var orders status.CacheState
	for _, s := range snap.Services {
		if s.Name == "orders" {
			orders = s.Cache
		}
	}
	now := snap.Generated
	switch {
	case snap.Config.LastReload.Time.Before(before) || snap.Config.LastReload.Time.After(now):
		t.Errorf("last reload at %v, not between the reload (%v) and the snapshot (%v)", snap.Config.LastReload.Time, before, now)
	case orders.NextExpiry == nil || !orders.NextExpiry.After(now):
		t.Errorf("orders next expiry %v, want after %v", orders.NextExpiry, now)
	case orders.NextRefresh == nil || !orders.NextRefresh.After(now) || !orders.NextRefresh.Before(*orders.NextExpiry):
		t.Errorf("orders next refresh %v, want between now and the expiry %v", orders.NextRefresh, orders.NextExpiry)
	case snap.Denials[0].Time.Before(snap.Denials[2].Time) || snap.Denials[0].Time.After(before):
		t.Errorf("denial times %v, %v: want newest first, before the reload", snap.Denials[0].Time, snap.Denials[2].Time)
	case orders.Window <= 0 || orders.Window > 60:
		t.Errorf("hit ratio window %vs, want the seconds since start", orders.Window)
	}
}

// TestAdminListenerServesTheStatusPageOnly: /status and /status.json on
// the admin listener, nothing an Envoy calls; health, metrics and checks
// stay on the HTTP listener, which has no status page.
func TestAdminListenerServesTheStatusPageOnly(t *testing.T) {
	f := start(t, "orders.read")
	tests := []struct {
		name, listener, method, path string
		want                         int
		contentType                  string
	}{
		{"status-page", "admin", "GET", "/status", 200, "text/html; charset=utf-8"},
		{"status-json", "admin", "GET", "/status.json", 200, "application/json"},
		{"root-redirects-to-status", "admin", "GET", "/", 302, ""},
		{"explain-form", "admin", "POST", "/status", 200, "text/html; charset=utf-8"},
		{"no-checks-on-admin", "admin", "GET", "/check/v1/orders", 404, ""},
		{"no-forward-auth-on-admin", "admin", "GET", "/forward-auth", 404, ""},
		{"no-metrics-on-admin", "admin", "GET", "/metrics", 404, ""},
		{"no-health-on-admin", "admin", "GET", "/readyz", 404, ""},
		{"no-profiles-without-pprof", "admin", "GET", "/debug/pprof/", 404, ""},
		{"no-status-on-http", "http", "GET", "/status", 404, ""},
		{"no-status-json-on-http", "http", "GET", "/status.json", 404, ""},
		{"metrics-stay-on-http", "http", "GET", "/metrics", 200, ""},
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr := f.app.AdminAddr()
			if tc.listener == "http" {
				addr = f.app.HTTPAddr()
			}
			req, _ := http.NewRequest(tc.method, "http://"+addr+tc.path, bytes.NewBufferString("url=https://orders.internal/"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want || (tc.contentType != "" && resp.Header.Get("Content-Type") != tc.contentType) {
				t.Errorf("%d %s, want %d %s", resp.StatusCode, resp.Header.Get("Content-Type"), tc.want, tc.contentType)
			}
			if csp := resp.Header.Get("Content-Security-Policy"); tc.listener == "admin" && !strings.HasPrefix(csp, "default-src 'none';") {
				t.Errorf("Content-Security-Policy %q, want default-src 'none'", csp)
			}
		})
	}
	if strings.Contains(f.logs.String(), "admin listener bound beyond loopback") {
		t.Errorf("warned about a loopback admin listener:\n%s", f.logs)
	}
	if !strings.Contains(f.logs.String(), `"admin":"`+f.app.AdminAddr()+`"`) {
		t.Errorf("the serving line does not name the admin address:\n%s", f.logs)
	}
}

// TestPprofOnAdminListener: listen.pprof adds Go's profiles to the admin
// listener, beside the status page, and to no other listener.
func TestPprofOnAdminListener(t *testing.T) {
	idp := startIdP(t)
	cfg, err := config.Parse("pprof.yaml", []byte(strings.Replace(fmt.Sprintf(appConfig, idp.Issuer(), "orders.read"), "admin: 127.0.0.1:0}", "admin: 127.0.0.1:0, pprof: true}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	a, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Shutdown)
	for _, tc := range []struct {
		name, addr, path string
		want             int
	}{
		{"index", a.AdminAddr(), "/debug/pprof/", 200},
		{"heap", a.AdminAddr(), "/debug/pprof/heap?debug=1", 200},
		{"cpu-profile", a.AdminAddr(), "/debug/pprof/profile?seconds=1", 200},
		{"status-page-still-there", a.AdminAddr(), "/status", 200},
		{"not-on-http", a.HTTPAddr(), "/debug/pprof/", 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Get("http://" + tc.addr + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want || tc.want == 200 && len(body) == 0 {
				t.Fatalf("%d with %d bytes, want %d", resp.StatusCode, len(body), tc.want)
			}
		})
	}
}

func TestBeyondLoopback(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:9003", false},
		{"127.0.0.2:9003", false},
		{"[::1]:9003", false},
		{"0.0.0.0:9003", true},
		{"[::]:9003", true},
		{"10.1.2.3:9003", true},
		{"[2001:db8::1]:9003", true},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			a, err := net.ResolveTCPAddr("tcp", tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			if got := beyondLoopback(a); got != tc.want {
				t.Errorf("beyondLoopback(%s) = %v, want %v", tc.addr, got, tc.want)
			}
		})
	}
}
