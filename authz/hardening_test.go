package authz

// Regression tests for the hardening review (issue 7) at the decision
// point: which service a crafted host selects, and the request id echoed.

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/tokens"
)

const kubeConfig = `
defaults: {token_url: "http://127.0.0.1:1/token", client_id: tokenauthz, client_secret: s3cret}
services:
  kube: {hosts: [kube.internal], grant_type: client_credentials}
`

// TestUnicodeHostBuysNoToken: strings.ToLower maps U+212A KELVIN SIGN to
// "k", so "\u212Aube.internal" used to get kube.internal's token, while
// nginx and Envoy route that request to another virtual host.
func TestUnicodeHostBuysNoToken(t *testing.T) {
	s := newServer(t, kubeConfig, fakeSource(func(r tokens.Request) (tokens.Token, error) {
		return tokens.Token{AccessToken: "kube-token"}, nil
	}))
	for _, tt := range []struct {
		name, host string
		want       Reason
	}{
		{"ascii", "kube.internal", ReasonTokenInjected},
		{"ascii-upper-case", "KUBE.internal", ReasonTokenInjected},
		{"kelvin-sign", "\u212Aube.internal", ReasonNoMatch},
		{"kelvin-sign-with-port", "\u212Aube.internal:443", ReasonNoMatch},
		{"fullwidth-k", "\uff2bube.internal", ReasonNoMatch},
		{"nul-byte", "kube.internal\x00", ReasonNoMatch},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := s.Check(context.Background(), checkReq("GET", tt.host, "/", nil, nil))
			if err != nil {
				t.Fatal(err)
			}
			got := ReasonTokenInjected
			if resp.GetDeniedResponse() != nil {
				var body struct{ Error Reason }
				json.Unmarshal([]byte(resp.GetDeniedResponse().GetBody()), &body)
				got = body.Error
			}
			if got != tt.want {
				t.Errorf("host %q: %s, want %s", tt.host, got, tt.want)
			}
		})
	}
}

// envoyCheck is a CheckRequest as Envoy builds it: attributes.request.http
// carries id (always: the stream id, source/extensions/filters/common/
// ext_authz/check_request_utils.cc) and the headers, x-request-id among
// them when the connection manager generated or accepted one.
func envoyCheck(streamID, xRequestID string) *authv3.CheckRequest {
	headers := map[string]string{":authority": "nope.internal", ":method": "GET", ":path": "/", ":scheme": "http"}
	if xRequestID != "" {
		headers["x-request-id"] = xRequestID
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Id: streamID, Method: "GET", Host: "nope.internal", Path: "/", Scheme: "http", Headers: headers},
	}}}
}

func TestRequestID(t *testing.T) {
	huge := strings.Repeat("r", 3<<20)
	for _, tt := range []struct {
		name string
		req  *authv3.CheckRequest
		want string
	}{
		{"envoy-shape-header-wins-over-stream-id", envoyCheck("12345678901234", "6f1c7a2e-uuid"), "6f1c7a2e-uuid"},
		{"stream-id-when-no-header", envoyCheck("12345678901234", ""), "12345678901234"},
		{"3mb-header-is-clipped", envoyCheck("1", huge), huge[:maxRequestIDLen]},
		{"clip-keeps-utf8-whole", envoyCheck("1", strings.Repeat("r", maxRequestIDLen-1)+"é"), strings.Repeat("r", maxRequestIDLen-1)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			cfg, err := config.Parse("test.yaml", []byte(kubeConfig))
			if err != nil {
				t.Fatal(err)
			}
			s := New(cfg, fakeSource(func(tokens.Request) (tokens.Token, error) { return tokens.Token{}, nil }),
				Options{Log: slog.New(slog.NewJSONHandler(&logs, nil))})
			resp, err := s.Check(context.Background(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			body := resp.GetDeniedResponse().GetBody()
			var got struct {
				RequestID string `json:"request_id"`
			}
			if err := json.Unmarshal([]byte(body), &got); err != nil || got.RequestID != tt.want {
				t.Errorf("request_id %q (%v), want %q", short(got.RequestID), err, short(tt.want))
			}
			if len(body) > 1024 || logs.Len() > 2048 {
				t.Errorf("denial body %d bytes, log %d bytes: the request id is not bounded", len(body), logs.Len())
			}
			if !strings.Contains(logs.String(), `"request_id":"`+tt.want+`"`) {
				t.Errorf("log %q does not name request_id %q", short(logs.String()), short(tt.want))
			}
		})
	}
}

func TestHTTPRequestIDIsClipped(t *testing.T) {
	s := newServer(t, kubeConfig, fakeSource(func(tokens.Request) (tokens.Token, error) { return tokens.Token{}, nil }))
	h := s.HTTPHandler(http.NotFoundHandler())
	big := strings.Repeat("r", 900<<10) // under net/http's 1 MB header limit
	for _, target := range []string{"/check/", "/forward-auth"} {
		t.Run(strings.Trim(target, "/"), func(t *testing.T) {
			req := httptest.NewRequest("GET", target, nil)
			req.Host = "nope.internal"
			req.Header.Set("X-Request-Id", big)
			req.Header.Set("X-Forwarded-Method", "GET")
			req.Header.Set("X-Forwarded-Uri", "/")
			req.Header.Set("X-Forwarded-Host", "nope.internal")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusForbidden || rec.Body.Len() > 1024 {
				t.Errorf("HTTP %d with a %d-byte body, want 403 with a bounded body", rec.Code, rec.Body.Len())
			}
		})
	}
}
