package authz

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokenauthz/tokenauthz/tokens"
)

// httpCase is one request to the HTTP authorization endpoints and what the
// response must be: the status, and the injected header or the denial reason.
type httpCase struct {
	name       string
	method     string
	target     string // request URI
	host       string
	headers    map[string]string
	status     int
	wantHeader string // allowed: the header and value set
	wantValue  string
	reason     Reason // denied: the body's error
}

func TestHTTPCheck(t *testing.T) {
	bearer := map[string]string{"Authorization": "Bearer alice"}
	tests := []httpCase{
		{name: "service-scope-client-credentials", method: "GET", target: "/check/v1/orders/42", host: "orders.internal", status: 200, wantHeader: "Authorization", wantValue: "Bearer client_credentials|[orders.read]||"},
		{name: "original-method-selects-endpoint", method: "POST", target: "/check/v1/orders", host: "orders.internal", status: 200, wantHeader: "Authorization", wantValue: "Bearer client_credentials|[orders.write]||"},
		{name: "query-kept-in-path", method: "GET", target: "/check/v1/orders/history?x=1", host: "orders.internal", headers: bearer, status: 200, wantHeader: "Authorization", wantValue: "Bearer urn:ietf:params:oauth:grant-type:token-exchange|[orders.read]|orders|alice"},
		{name: "unclean-path-decided-not-redirected", method: "GET", target: "/check/v1//orders/../x", host: "orders.internal", status: 200, wantHeader: "Authorization", wantValue: "Bearer client_credentials|[orders.read]||"},
		{name: "host-with-port", method: "GET", target: "/check/v1/x", host: "ORDERS.internal:8080", status: 200, wantHeader: "Authorization", wantValue: "Bearer client_credentials|[orders.read]||"},
		{name: "configured-header-name", method: "GET", target: "/check/me", host: "profile.internal", status: 200, wantHeader: "X-Backend-Token", wantValue: "Bearer client_credentials|[]||"},
		{name: "grant-none-injects-nothing", method: "GET", target: "/check/", host: "open.internal", status: 200},
		{name: "forwarded-headers-ignored", method: "GET", target: "/check/", host: "nope.internal", headers: map[string]string{"X-Forwarded-Host": "orders.internal", "X-Forwarded-Uri": "/v1"}, status: 403, reason: ReasonNoMatch},
		{name: "unknown-host-is-403", method: "GET", target: "/check/", host: "nope.internal", status: 403, reason: ReasonNoMatch},
		{name: "exchange-without-caller-token-is-401", method: "GET", target: "/check/v1/orders/history", host: "orders.internal", status: 401, reason: ReasonMissingSubject},
	}
	runHTTP(t, tests)
}

func TestHTTPForwardAuth(t *testing.T) {
	fwd := func(method, uri, host string, extra ...string) map[string]string {
		h := map[string]string{"X-Forwarded-Method": method, "X-Forwarded-Uri": uri, "X-Forwarded-Host": host}
		for i := 0; i+1 < len(extra); i += 2 {
			h[extra[i]] = extra[i+1]
		}
		return h
	}
	tests := []httpCase{
		{name: "client-credentials", target: "/forward-auth", headers: fwd("GET", "/v1/orders/42", "orders.internal"), status: 200, wantHeader: "Authorization", wantValue: "Bearer client_credentials|[orders.read]||"},
		{name: "forwarded-method-selects-endpoint", target: "/forward-auth", headers: fwd("POST", "/v1/orders", "orders.internal"), status: 200, wantHeader: "Authorization", wantValue: "Bearer client_credentials|[orders.write]||"},
		{name: "token-exchange-of-caller-token", target: "/forward-auth", headers: fwd("GET", "/v1/orders/history?x=1", "orders.internal", "Authorization", "Bearer alice"), status: 200, wantHeader: "Authorization", wantValue: "Bearer urn:ietf:params:oauth:grant-type:token-exchange|[orders.read]|orders|alice"},
		{name: "original-uri-and-host", target: "/forward-auth", headers: map[string]string{"X-Forwarded-Method": "GET", "X-Original-URI": "/v1/x", "X-Original-Host": "orders.internal"}, status: 200, wantHeader: "Authorization", wantValue: "Bearer client_credentials|[orders.read]||"},
		{name: "same-value-in-both-uri-headers", target: "/forward-auth", headers: fwd("GET", "/v1/x", "orders.internal", "X-Original-URI", "/v1/x"), status: 200, wantHeader: "Authorization", wantValue: "Bearer client_credentials|[orders.read]||"},
		{name: "own-host-and-path-ignored", target: "/forward-auth", host: "orders.internal", headers: fwd("GET", "/", "nope.internal"), status: 403, reason: ReasonNoMatch},
		{name: "configured-header-name", target: "/forward-auth", headers: fwd("GET", "/me", "profile.internal"), status: 200, wantHeader: "X-Backend-Token", wantValue: "Bearer client_credentials|[]||"},
		{name: "grant-none-injects-nothing", target: "/forward-auth", headers: fwd("GET", "/", "open.internal"), status: 200},
		{name: "unknown-host-is-403", target: "/forward-auth", headers: fwd("GET", "/", "nope.internal"), status: 403, reason: ReasonNoMatch},
		{name: "exchange-without-caller-token-is-401", target: "/forward-auth", headers: fwd("GET", "/v1/orders/history", "orders.internal"), status: 401, reason: ReasonMissingSubject},
		{name: "missing-method-is-400", target: "/forward-auth", headers: fwd("", "/v1", "orders.internal"), status: 400, reason: ReasonMalformed},
		{name: "missing-uri-is-400", target: "/forward-auth", headers: fwd("GET", "", "orders.internal"), status: 400, reason: ReasonMalformed},
		{name: "missing-host-is-400", target: "/forward-auth", host: "orders.internal", headers: fwd("GET", "/v1", ""), status: 400, reason: ReasonMalformed},
		{name: "conflicting-uris-are-400", target: "/forward-auth", headers: fwd("GET", "/v1", "orders.internal", "X-Original-URI", "/v1/orders/history"), status: 400, reason: ReasonMalformed},
		{name: "conflicting-hosts-are-400", target: "/forward-auth", headers: fwd("GET", "/", "nope.internal", "X-Original-Host", "orders.internal"), status: 400, reason: ReasonMalformed},
	}
	runHTTP(t, tests)
}

func runHTTP(t *testing.T, tests []httpCase) {
	t.Helper()
	s := newServer(t, testConfig, fakeSource(func(r tokens.Request) (tokens.Token, error) { return describe(r), nil }))
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("%s %s reached the next handler", r.Method, r.RequestURI)
	})
	h := s.HTTPHandler(next)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = "GET"
			}
			req := httptest.NewRequest(method, tt.target, nil)
			req.Host = tt.host
			req.Header.Set("X-Request-Id", "req-1")
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			resp := rec.Result()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tt.status, rec.Body)
			}
			if resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", resp.Header.Get("Cache-Control"))
			}
			if tt.status == http.StatusOK {
				assertInjected(t, resp, tt.wantHeader, tt.wantValue)
				return
			}
			assertHTTPDenied(t, resp, tt.reason)
		})
	}
}

// assertInjected checks that resp sets exactly header: value, or no token
// header when header is "".
func assertInjected(t *testing.T, resp *http.Response, header, value string) {
	t.Helper()
	for _, name := range []string{"Authorization", "X-Backend-Token"} {
		got := resp.Header.Values(name)
		switch {
		case name == header && (len(got) != 1 || got[0] != value):
			t.Errorf("%s: %q, want [%q]", name, got, value)
		case name != header && len(got) != 0:
			t.Errorf("%s: %q, want none", name, got)
		}
	}
}

func assertHTTPDenied(t *testing.T, resp *http.Response, reason Reason) {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content-type %q, want application/json", ct)
	}
	if got := resp.Header.Values("Authorization"); len(got) != 0 {
		t.Errorf("a denial sets Authorization %q", got)
	}
	raw, _ := io.ReadAll(resp.Body)
	var body struct {
		Error     Reason `json:"error"`
		Message   string `json:"message"`
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("body %q: %v", raw, err)
	}
	if body.Error != reason || body.Message == "" || body.RequestID != "req-1" {
		t.Errorf("body %+v, want error %q, a message and request_id req-1", body, reason)
	}
}

func TestHTTPHandlerPassesOtherPaths(t *testing.T) {
	s := newServer(t, testConfig, fakeSource(func(r tokens.Request) (tokens.Token, error) {
		t.Error("no token may be fetched")
		return tokens.Token{}, nil
	}))
	h := s.HTTPHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "next") }))
	for _, target := range []string{"/healthz", "/check", "/checkout/x", "/forward-auth/x", "/x/forward-auth"} {
		t.Run(strings.Trim(strings.ReplaceAll(target, "/", "-"), "-"), func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", target, nil))
			if rec.Body.String() != "next" {
				t.Fatalf("%s: got %d %q, want the next handler", target, rec.Code, rec.Body)
			}
		})
	}
}
