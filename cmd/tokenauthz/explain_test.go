package main

import (
	"bytes"
	"strings"
	"testing"
)

const nativeConfig = `
defaults: {token_url: "https://idp.example/token", client_id: tokenauthz, client_secret: s3cret-value, grant_type: client_credentials}
services:
  orders:
    routes: ["HTTPRoute/shop/orders"]
    callers: ["spiffe://cluster.local/ns/shop/sa/checkout", "spiffe://cluster.local/ns/ops/*"]
    remove_headers: [cookie]
    endpoints:
      create: {path: /orders, methods: [POST], callers: ["spiffe://cluster.local/ns/shop/sa/checkout"]}
  apikey:
    hosts: [apikey.internal]
    header: x-api-token
    header_format: "{token}"
`

// TestExplainEnvoyNative: explain shows how a backend was selected (route
// metadata, an Envoy Gateway route, host), the callers and whether the
// principal is one, and the request shaping, as a check would decide.
func TestExplainEnvoyNative(t *testing.T) {
	cfg := writeConfig(t, nativeConfig)
	tests := []struct {
		name     string
		args     []string
		want     []string
		wantCode int
	}{
		{"route-metadata", []string{"--url", "http://x/", "--route-metadata", "service=apikey"},
			[]string{"service:   apikey", "selected by route metadata", "header:    x-api-token: <token from the request below>", "removes:   authorization"}, 0},
		{"envoy-gateway-route-and-caller", []string{"--url", "http://x/orders", "--route", "HTTPRoute/shop/orders/rule-a", "--principal", "spiffe://cluster.local/ns/ops/sa/deployer"},
			[]string{"caller:    spiffe://cluster.local/ns/ops/sa/deployer", "service:   orders", "selected by route HTTPRoute/shop/orders/rule-a", "callers:   spiffe://cluster.local/ns/shop/sa/checkout, spiffe://cluster.local/ns/ops/*", "decision:  allow (token_injected)", "removes:   cookie"}, 0},
		{"caller-not-listed", []string{"--url", "http://x/orders", "--route", "HTTPRoute/shop/orders", "--principal", "spiffe://cluster.local/ns/web/sa/frontend"},
			[]string{`decision:  deny 403 caller_not_allowed: caller not allowed: "spiffe://cluster.local/ns/web/sa/frontend" is not among the callers of service "orders"`}, 0},
		{"endpoint-narrows-callers", []string{"--method", "POST", "--url", "http://x/orders", "--route", "HTTPRoute/shop/orders", "--principal", "spiffe://cluster.local/ns/ops/sa/deployer"},
			[]string{"endpoint:  create", "decision:  deny 403 caller_not_allowed"}, 0},
		{"no-principal", []string{"--url", "http://x/orders", "--route", "HTTPRoute/shop/orders"},
			[]string{"decision:  deny 403 caller_not_allowed", "no principal"}, 0},
		{"context-extension-beats-route-metadata", []string{"--url", "http://x/orders", "--context", "service=apikey", "--route-metadata", "service=orders"},
			[]string{"service:   apikey", "selected by context extensions"}, 0},
		{"bad-route", []string{"--url", "http://x/", "--route", "HTTPRoute/shop"}, []string{"want KIND/NAMESPACE/NAME"}, 2},
		{"bad-route-metadata", []string{"--url", "http://x/", "--route-metadata", "svc=x"}, []string{"want service=NAME or endpoint=NAME"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			code := run(append([]string{"explain", "--config", cfg}, tt.args...), &out, &out)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d:\n%s", code, tt.wantCode, out.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			if strings.Contains(out.String(), "s3cret-value") {
				t.Errorf("output shows the secret:\n%s", out.String())
			}
		})
	}
}
