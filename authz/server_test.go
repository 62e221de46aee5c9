package authz

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/tokens"
)

const testConfig = `
defaults:
  token_url: http://127.0.0.1:1/token
  client_id: tokenauthz
  client_secret: s3cret
services:
  orders:
    hosts: [orders.internal]
    path_prefix: /v1
    grant_type: client_credentials
    scope: orders.read
    endpoints:
      create: {path: /orders, methods: [POST], scope: orders.write}
      history: {path: /orders/history, grant_type: token_exchange, audience: orders}
      obo: {path: /orders/obo, grant_type: jwt_bearer, token_params: {requested_token_use: on_behalf_of}}
  open:
    hosts: [open.internal]
  profile:
    hosts: [profile.internal]
    grant_type: auto
    header: x-backend-token
`

// fakeSource answers from a function of the request: a stand-in for the
// token layer used only to inject outcomes; real IdPs are tested in e2e/.
type fakeSource func(tokens.Request) (tokens.Token, error)

func (f fakeSource) Token(_ context.Context, r tokens.Request) (tokens.Token, error) { return f(r) }

// describe names a token request by what makes it differ.
func describe(r tokens.Request) tokens.Token {
	return tokens.Token{AccessToken: fmt.Sprintf("%s|%v|%s|%s", r.GrantType, r.Scope, r.Audience, r.SubjectToken)}
}

func newServer(t *testing.T, yaml string, src TokenSource) *Server {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return New(cfg, src, Options{})
}

func checkReq(method, host, path string, headers map[string]string, ext map[string]string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		ContextExtensions: ext,
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: method, Host: host, Path: path, Headers: headers,
		}},
	}}
}

func TestCheckAllows(t *testing.T) {
	s := newServer(t, testConfig, fakeSource(func(r tokens.Request) (tokens.Token, error) { return describe(r), nil }))
	bearer := map[string]string{"authorization": "Bearer alice"}
	tests := []struct {
		name       string
		req        *authv3.CheckRequest
		wantHeader string
		wantValue  string
	}{
		{"service-scope-client-credentials", checkReq("GET", "orders.internal", "/v1/orders/42", nil, nil), "authorization", "Bearer client_credentials|[orders.read]||"},
		{"endpoint-scope-overrides", checkReq("POST", "orders.internal", "/v1/orders", nil, nil), "authorization", "Bearer client_credentials|[orders.write]||"},
		{"method-mismatch-falls-back-to-service", checkReq("GET", "orders.internal", "/v1/orders", nil, nil), "authorization", "Bearer client_credentials|[orders.read]||"},
		{"token-exchange-of-caller-token", checkReq("GET", "orders.internal", "/v1/orders/history?x=1", bearer, nil), "authorization", "Bearer urn:ietf:params:oauth:grant-type:token-exchange|[orders.read]|orders|alice"},
		{"jwt-bearer-of-caller-token", checkReq("GET", "orders.internal", "/v1/orders/obo", bearer, nil), "authorization", "Bearer urn:ietf:params:oauth:grant-type:jwt-bearer|[orders.read]||alice"},
		{"context-extensions-select-endpoint", checkReq("GET", "elsewhere", "/", bearer, map[string]string{"service": "orders", "endpoint": "history"}), "authorization", "Bearer urn:ietf:params:oauth:grant-type:token-exchange|[orders.read]|orders|alice"},
		{"auto-with-caller-token-exchanges", checkReq("GET", "profile.internal", "/me", bearer, nil), "x-backend-token", "Bearer urn:ietf:params:oauth:grant-type:token-exchange|[]||alice"},
		{"auto-without-caller-token-uses-client-credentials", checkReq("GET", "profile.internal", "/me", nil, nil), "x-backend-token", "Bearer client_credentials|[]||"},
		{"host-from-authority-header", checkReq("GET", "", "/v1/x", map[string]string{":authority": "ORDERS.internal:8080"}, nil), "authorization", "Bearer client_credentials|[orders.read]||"},
		{"grant-none-injects-nothing", checkReq("GET", "open.internal", "/", nil, nil), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := s.Check(context.Background(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if got := codes.Code(resp.GetStatus().GetCode()); got != codes.OK {
				t.Fatalf("status %v, want OK; denied: %s", got, resp.GetDeniedResponse().GetBody())
			}
			headers := resp.GetOkResponse().GetHeaders()
			if tt.wantHeader == "" {
				if len(headers) != 0 {
					t.Fatalf("headers %v, want none", headers)
				}
				return
			}
			if len(headers) != 1 {
				t.Fatalf("got %d headers, want 1", len(headers))
			}
			h := headers[0]
			if h.GetHeader().GetKey() != tt.wantHeader || h.GetHeader().GetValue() != tt.wantValue {
				t.Errorf("header %s: %s, want %s: %s", h.GetHeader().GetKey(), h.GetHeader().GetValue(), tt.wantHeader, tt.wantValue)
			}
			if h.GetAppend() == nil || h.GetAppend().GetValue() || h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
				t.Errorf("header must overwrite: append=%v append_action=%v", h.GetAppend(), h.GetAppendAction())
			}
		})
	}
}

func TestCheckDenials(t *testing.T) {
	failWith := func(err error) TokenSource {
		return fakeSource(func(tokens.Request) (tokens.Token, error) { return tokens.Token{}, err })
	}
	ok := fakeSource(func(r tokens.Request) (tokens.Token, error) { return describe(r), nil })
	tests := []struct {
		name   string
		src    TokenSource
		req    *authv3.CheckRequest
		code   codes.Code
		status int
		reason Reason
	}{
		{"nil-request", ok, nil, codes.InvalidArgument, 400, ReasonMalformed},
		{"no-http-attributes", ok, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{}}, codes.InvalidArgument, 400, ReasonMalformed},
		{"no-method", ok, checkReq("", "orders.internal", "/v1", nil, nil), codes.InvalidArgument, 400, ReasonMalformed},
		{"no-host", ok, checkReq("GET", "", "/v1", nil, nil), codes.InvalidArgument, 400, ReasonMalformed},
		{"unknown-host", ok, checkReq("GET", "nope.internal", "/", nil, nil), codes.PermissionDenied, 403, ReasonNoMatch},
		{"prefix-not-at-segment-boundary", ok, checkReq("GET", "orders.internal", "/v10", nil, nil), codes.PermissionDenied, 403, ReasonNoMatch},
		{"unknown-service-name", ok, checkReq("GET", "orders.internal", "/v1", nil, map[string]string{"service": "nope"}), codes.PermissionDenied, 403, ReasonUnknownService},
		{"unknown-endpoint-name", ok, checkReq("GET", "orders.internal", "/v1", nil, map[string]string{"service": "orders", "endpoint": "nope"}), codes.PermissionDenied, 403, ReasonUnknownService},
		{"exchange-without-caller-token", ok, checkReq("GET", "orders.internal", "/v1/orders/history", nil, nil), codes.Unauthenticated, 401, ReasonMissingSubject},
		{"jwt-bearer-without-caller-token", ok, checkReq("GET", "orders.internal", "/v1/orders/obo", nil, nil), codes.Unauthenticated, 401, ReasonMissingSubject},
		{"jwt-bearer-subject-rejected", failWith(&tokens.Error{Class: tokens.ErrSubjectRejected, Code: "invalid_grant"}), checkReq("GET", "orders.internal", "/v1/orders/obo", map[string]string{"authorization": "Bearer x"}, nil), codes.Unauthenticated, 401, ReasonSubjectRejected},
		{"exchange-with-basic-auth-only", ok, checkReq("GET", "orders.internal", "/v1/orders/history", map[string]string{"authorization": "Basic dTpw"}, nil), codes.Unauthenticated, 401, ReasonMissingSubject},
		{"subject-rejected", failWith(&tokens.Error{Class: tokens.ErrSubjectRejected, Code: "invalid_grant"}), checkReq("GET", "orders.internal", "/v1/orders/history", map[string]string{"authorization": "Bearer x"}, nil), codes.Unauthenticated, 401, ReasonSubjectRejected},
		{"client-rejected", failWith(&tokens.Error{Class: tokens.ErrClientRejected, Code: "invalid_client"}), checkReq("GET", "orders.internal", "/v1", nil, nil), codes.Internal, 500, ReasonClientRejected},
		{"endpoint-unavailable", failWith(&tokens.Error{Class: tokens.ErrUnavailable}), checkReq("GET", "orders.internal", "/v1", nil, nil), codes.Unavailable, 503, ReasonUnavailable},
		{"unclassified-error", failWith(fmt.Errorf("boom")), checkReq("GET", "orders.internal", "/v1", nil, nil), codes.Internal, 500, ReasonInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, testConfig, tt.src)
			req := tt.req
			if req != nil && req.GetAttributes().GetRequest().GetHttp() != nil {
				req.Attributes.Request.Http.Id = "req-1"
			}
			resp, err := s.Check(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			assertDenied(t, resp, tt.code, tt.status, tt.reason)
		})
	}
}

func assertDenied(t *testing.T, resp *authv3.CheckResponse, code codes.Code, status int, reason Reason) {
	t.Helper()
	if got := codes.Code(resp.GetStatus().GetCode()); got != code {
		t.Errorf("grpc status %v, want %v", got, code)
	}
	denied := resp.GetDeniedResponse()
	if got := int(denied.GetStatus().GetCode()); got != status {
		t.Errorf("http status %d, want %d", got, status)
	}
	var body struct{ Error, Message, RequestID string }
	if err := json.Unmarshal([]byte(denied.GetBody()), &body); err != nil {
		t.Fatalf("body %q: %v", denied.GetBody(), err)
	}
	if body.Error != string(reason) || body.Message == "" {
		t.Errorf("body %+v, want error %q and a message", body, reason)
	}
}

func TestCheckUnmatchedAllow(t *testing.T) {
	s := newServer(t, "unmatched: allow\n"+testConfig, fakeSource(func(tokens.Request) (tokens.Token, error) {
		t.Error("no token may be fetched for an unmatched request")
		return tokens.Token{}, nil
	}))
	resp, _ := s.Check(context.Background(), checkReq("GET", "nope.internal", "/", map[string]string{"authorization": "Bearer keep"}, nil))
	if codes.Code(resp.GetStatus().GetCode()) != codes.OK || len(resp.GetOkResponse().GetHeaders()) != 0 {
		t.Fatalf("want untouched allow, got %v", resp)
	}
}

func TestCheckRawHeaderMap(t *testing.T) {
	s := newServer(t, testConfig, fakeSource(func(r tokens.Request) (tokens.Token, error) { return describe(r), nil }))
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
		HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: ":method", RawValue: []byte("GET")},
			{Key: ":authority", RawValue: []byte("orders.internal")},
			{Key: ":path", RawValue: []byte("/v1/orders/history")},
			{Key: "authorization", RawValue: []byte("Bearer bob")},
		}},
	}}}}
	resp, _ := s.Check(context.Background(), req)
	got := resp.GetOkResponse().GetHeaders()
	if len(got) != 1 || got[0].GetHeader().GetValue() != "Bearer urn:ietf:params:oauth:grant-type:token-exchange|[orders.read]|orders|bob" {
		t.Fatalf("raw header_map not read: %v", resp)
	}
}

// serveGRPC serves s as tokenauthz does (its codec, its service) on a
// loopback port, and returns a client of it.
func serveGRPC(t *testing.T, s *Server) authv3.AuthorizationClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(GRPCServerOptions()...)
	s.RegisterGRPC(srv)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return authv3.NewAuthorizationClient(conn)
}

func TestCheckOverGRPC(t *testing.T) {
	s := newServer(t, testConfig, fakeSource(func(r tokens.Request) (tokens.Token, error) { return describe(r), nil }))
	client := serveGRPC(t, s)
	resp, err := client.Check(context.Background(), checkReq("GET", "orders.internal", "/v1/x", nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if v := resp.GetOkResponse().GetHeaders()[0].GetHeader().GetValue(); v != "Bearer client_credentials|[orders.read]||" {
		t.Fatalf("got %q", v)
	}
	resp, err = client.Check(context.Background(), checkReq("GET", "nope", "/", nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	assertDenied(t, resp, codes.PermissionDenied, 403, ReasonNoMatch)
}

// TestTokenEndpointComesOnlyFromConfig sends requests whose host, path and
// headers name other token endpoints; every token request must still go to
// the configured one.
func TestTokenEndpointComesOnlyFromConfig(t *testing.T) {
	var seen []tokens.Request
	s := newServer(t, testConfig, fakeSource(func(r tokens.Request) (tokens.Token, error) {
		seen = append(seen, r)
		return describe(r), nil
	}))
	evil := map[string]string{
		"x-forwarded-host": "evil.example", "x-original-host": "evil.example", "x-token-url": "http://evil.example/token",
		"x-issuer": "http://evil.example/", ":authority": "evil.example", "authorization": "Bearer x",
	}
	for _, req := range []*authv3.CheckRequest{
		checkReq("GET", "orders.internal", "http://evil.example/token", evil, nil),
		checkReq("GET", "orders.internal", "/v1//evil.example/token", evil, nil),
		checkReq("GET", "orders.internal:443", "/v1/orders/history?token_url=http://evil.example", evil, nil),
		checkReq("GET", "evil.example", "/", evil, map[string]string{"service": "orders", "token_url": "http://evil.example/", "issuer": "http://evil.example/"}),
	} {
		if _, err := s.Check(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) == 0 {
		t.Fatal("no token request was made: the test proves nothing")
	}
	for _, r := range seen {
		if r.TokenURL != "http://127.0.0.1:1/token" || r.Issuer != "" {
			t.Errorf("token request to issuer %q token_url %q, want only the configured token_url", r.Issuer, r.TokenURL)
		}
	}
}

func TestCheckRejectsMalformedBearer(t *testing.T) {
	s := newServer(t, testConfig, fakeSource(func(r tokens.Request) (tokens.Token, error) { return describe(r), nil }))
	for _, v := range []string{"Bearer Bearer x", "Bearer a, Bearer b", "Bearer a b", "Bearer ", "Bearer =abc", "Bearer a\x00b"} {
		t.Run(v, func(t *testing.T) {
			resp, err := s.Check(context.Background(), checkReq("GET", "orders.internal", "/v1/orders/history", map[string]string{"authorization": v}, nil))
			if err != nil {
				t.Fatal(err)
			}
			assertDenied(t, resp, codes.Unauthenticated, 401, ReasonMissingSubject)
		})
	}
}

func TestDenialMessageIsBounded(t *testing.T) {
	s := newServer(t, testConfig, fakeSource(func(r tokens.Request) (tokens.Token, error) { return describe(r), nil }))
	resp, _ := s.Check(context.Background(), checkReq("GET", "orders.internal", "/"+strings.Repeat("\xff", 1<<20), nil, nil))
	if n := len(resp.GetDeniedResponse().GetBody()); n > 4096 {
		t.Fatalf("denial body is %d bytes for a 1 MiB path: the message (also logged at info) echoes it unbounded", n)
	}
}
