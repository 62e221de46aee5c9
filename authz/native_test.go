package authz

// CheckRequests in the shapes Envoy and Envoy Gateway send them, for the
// Envoy-native features: route metadata, route identity, the source
// principal, and the dynamic metadata and request shaping of responses.

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tokenauthz/tokenauthz/tokens"
)

const nativeConfig = `
defaults: {token_url: "http://127.0.0.1:1/token", client_id: tokenauthz, client_secret: s3cret, grant_type: client_credentials}
services:
  orders:
    hosts: [orders.internal]
    routes: ["HTTPRoute/shop/orders"]
    callers: ["spiffe://cluster.local/ns/shop/sa/checkout", "spiffe://cluster.local/ns/ops/*"]
    remove_headers: [cookie]
    endpoints:
      create: {path: /orders, methods: [POST]}
  rule:
    routes: ["HTTPRoute/shop/orders/rule-a"]
  apikey:
    hosts: [apikey.internal]
    header: x-api-token
    header_format: "Token {token}"
  profile:
    hosts: [profile.internal]
    grant_type: token_exchange
`

// envoyRequest is a CheckRequest as Envoy's ext_authz filter builds it
// (source/extensions/filters/common/ext_authz/check_request_utils.cc):
// attributes.source.principal from the downstream peer certificate
// (setAttrContextPeer: the URI SAN, else the subject), the route's
// metadata of the namespaces listed in route_metadata_context_namespaces
// (createHttpCheck: route_metadata_context), and the request.
func envoyRequest(host, path, principal string, routeMeta map[string]*structpb.Struct) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:               &authv3.AttributeContext_Peer{Principal: principal},
		RouteMetadataContext: &corev3.Metadata{FilterMetadata: routeMeta},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "17", Method: "GET", Host: host, Path: path,
			Headers: map[string]string{":authority": host, ":method": "GET", ":path": path, "x-request-id": "req-9"},
		}},
	}}
}

// tokenauthzMeta is a route's metadata.filter_metadata.tokenauthz.
func tokenauthzMeta(kv map[string]any) map[string]*structpb.Struct {
	s, _ := structpb.NewStruct(kv)
	return map[string]*structpb.Struct{MetadataNamespace: s}
}

// gatewayMeta is what Envoy Gateway attaches to every route it translates,
// filter_metadata["envoy-gateway"].resources: one struct naming the route,
// with the rule's name as sectionName when the rule has one (Envoy
// Gateway's internal/xds/translator/metadata.go, buildXdsMetadata and
// buildResourceMetadata; internal/gatewayapi/route.go).
func gatewayMeta(kind, ns, name, section string) map[string]*structpb.Struct {
	res := map[string]any{"kind": kind, "namespace": ns, "name": name, "annotations": map[string]any{"team": "shop"}}
	if section != "" {
		res["sectionName"] = section
	}
	s, _ := structpb.NewStruct(map[string]any{"resources": []any{res}, "policies": []any{map[string]any{"kind": "SecurityPolicy", "name": "tokenauthz", "namespace": "gateways"}}})
	return map[string]*structpb.Struct{EnvoyGatewayMetadataNamespace: s}
}

const checkout = "spiffe://cluster.local/ns/shop/sa/checkout"

func TestEnvoyNativeChecks(t *testing.T) {
	s := newServer(t, nativeConfig, fakeSource(func(r tokens.Request) (tokens.Token, error) {
		return tokens.Token{AccessToken: "tok-" + r.Service, TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}, nil
	}))
	tests := []struct {
		name   string
		req    *authv3.CheckRequest
		reason Reason
		meta   map[string]any // fields the dynamic metadata must hold
	}{
		{"route-metadata-selects-service", envoyRequest("elsewhere", "/x", "", tokenauthzMeta(map[string]any{"service": "apikey"})),
			ReasonTokenInjected, map[string]any{"service": "apikey", "endpoint": "", "grant": "client_credentials", "reason": "token_injected", "cache": "none"}},
		{"route-metadata-endpoint", envoyRequest("elsewhere", "/x", checkout, tokenauthzMeta(map[string]any{"service": "orders", "endpoint": "create"})),
			ReasonTokenInjected, map[string]any{"service": "orders", "endpoint": "create"}},
		{"route-metadata-unknown-service", envoyRequest("orders.internal", "/x", checkout, tokenauthzMeta(map[string]any{"service": "nope"})),
			ReasonUnknownService, map[string]any{"reason": "unknown_service", "cache": "none"}},
		{"gateway-route-claimed", envoyRequest("any.example", "/x", checkout, gatewayMeta("HTTPRoute", "shop", "orders", "")),
			ReasonTokenInjected, map[string]any{"service": "orders"}},
		{"gateway-rule-claimed-apart", envoyRequest("any.example", "/x", "", gatewayMeta("HTTPRoute", "shop", "orders", "rule-a")),
			ReasonTokenInjected, map[string]any{"service": "rule"}},
		{"gateway-unclaimed-rule-falls-to-route", envoyRequest("any.example", "/x", checkout, gatewayMeta("HTTPRoute", "shop", "orders", "rule-b")),
			ReasonTokenInjected, map[string]any{"service": "orders"}},
		{"gateway-unclaimed-route-falls-to-host", envoyRequest("apikey.internal", "/", "", gatewayMeta("HTTPRoute", "shop", "other", "")),
			ReasonTokenInjected, map[string]any{"service": "apikey"}},
		{"caller-exact", envoyRequest("orders.internal", "/", checkout, nil), ReasonTokenInjected, nil},
		{"caller-prefix", envoyRequest("orders.internal", "/", "spiffe://cluster.local/ns/ops/sa/deployer", nil), ReasonTokenInjected, nil},
		{"caller-not-listed", envoyRequest("orders.internal", "/", "spiffe://cluster.local/ns/web/sa/frontend", nil),
			ReasonCallerNotAllowed, map[string]any{"service": "orders", "reason": "caller_not_allowed", "cache": "none"}},
		{"caller-without-principal", envoyRequest("orders.internal", "/", "", nil), ReasonCallerNotAllowed, nil},
		{"subject-missing", envoyRequest("profile.internal", "/", "", nil), ReasonMissingSubject, map[string]any{"grant": "token_exchange"}},
	}
	client := serveGRPC(t, s)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := s.Check(context.Background(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			viaGRPC, err := client.Check(context.Background(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			assertSameResponse(t, viaGRPC, resp)
			got := resp.GetDynamicMetadata().AsMap()
			if got["reason"] != string(tt.reason) {
				t.Fatalf("reason %v, want %s (denial %s)", got["reason"], tt.reason, resp.GetDeniedResponse().GetBody())
			}
			for k, v := range tt.meta {
				if got[k] != v {
					t.Errorf("dynamic metadata %s = %v, want %v (all: %v)", k, got[k], v, got)
				}
			}
			if _, leaked := got["token"]; leaked {
				t.Errorf("dynamic metadata carries a token: %v", got)
			}
		})
	}
}

// A cache hit's metadata names the entry and its remaining life, and its
// whole response is built once per entry and shared by every hit.
func TestHitResponseIsBuiltOncePerEntry(t *testing.T) {
	src := tokens.NewSource(tokens.Options{Fetcher: fetcherFunc(func(r tokens.Request) (tokens.Token, error) {
		return tokens.Token{AccessToken: "tok", TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}, nil
	})})
	s := newServer(t, nativeConfig, src)
	req := envoyRequest("orders.internal", "/", checkout, nil)
	first, _ := s.Check(context.Background(), req)
	second, _ := s.Check(context.Background(), req)
	third, _ := s.Check(context.Background(), req)
	md := first.GetDynamicMetadata().AsMap()
	if md["cache"] != "miss" || second.GetDynamicMetadata().AsMap()["cache"] != "hit" {
		t.Fatalf("cache outcomes %v then %v, want miss then hit", md["cache"], second.GetDynamicMetadata().AsMap()["cache"])
	}
	if id, _ := md["token_id"].(string); len(id) != 16 || second.GetDynamicMetadata().AsMap()["token_id"] != id {
		t.Errorf("token_id %v then %v, want one 16-character id", md["token_id"], second.GetDynamicMetadata().AsMap()["token_id"])
	}
	if left, _ := md["token_expires_in"].(float64); left < 3590 || left > 3600 {
		t.Errorf("token_expires_in %v, want about 3600", md["token_expires_in"])
	}
	if second != third {
		t.Error("two hits of one entry rendered two responses")
	}
	// Over gRPC a hit is sent as the bytes it was encoded to once.
	viaGRPC, err := serveGRPC(t, s).Check(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	assertSameResponse(t, viaGRPC, second)
	if h := second.GetOkResponse(); h.GetHeaders()[0].GetHeader().GetValue() != "Bearer tok" || strings.Join(h.GetHeadersToRemove(), ",") != "cookie" {
		t.Errorf("hit response: %v", h)
	}
}

// assertSameResponse compares two responses to one request, but for
// token_expires_in: made at different instants, they may straddle a second.
func assertSameResponse(t *testing.T, got, want *authv3.CheckResponse) {
	t.Helper()
	got, want = proto.Clone(got).(*authv3.CheckResponse), proto.Clone(want).(*authv3.CheckResponse)
	for _, r := range []*authv3.CheckResponse{got, want} {
		delete(r.GetDynamicMetadata().GetFields(), MetaExpiresIn)
	}
	if !proto.Equal(got, want) {
		t.Fatalf("response %v\nwant %v", got, want)
	}
}

type fetcherFunc func(tokens.Request) (tokens.Token, error)

func (f fetcherFunc) Fetch(_ context.Context, _ string, r tokens.Request) (tokens.Token, error) {
	return f(r)
}

func TestRequestShaping(t *testing.T) {
	s := newServer(t, nativeConfig, fakeSource(func(r tokens.Request) (tokens.Token, error) {
		return tokens.Token{AccessToken: "abc", TokenType: "Bearer"}, nil
	}))
	tests := []struct {
		name, host, header, value, remove string
	}{
		{"header-format-and-callers-authorization-dropped", "apikey.internal", "x-api-token", "Token abc", "authorization"},
		{"remove-headers-replace-the-default", "orders.internal", "authorization", "Bearer abc", "cookie"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/grpc", func(t *testing.T) {
			resp, _ := s.Check(context.Background(), envoyRequest(tt.host, "/", checkout, nil))
			ok := resp.GetOkResponse()
			if h := ok.GetHeaders(); len(h) != 1 || h[0].GetHeader().GetKey() != tt.header || h[0].GetHeader().GetValue() != tt.value {
				t.Errorf("headers %v, want %s: %s", h, tt.header, tt.value)
			}
			if got := strings.Join(ok.GetHeadersToRemove(), ","); got != tt.remove {
				t.Errorf("headers_to_remove %q, want %q", got, tt.remove)
			}
		})
	}
	t.Run("http-check-endpoint", func(t *testing.T) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/check/", nil)
		req.Host = "apikey.internal"
		s.HTTPHandler(http.NotFoundHandler()).ServeHTTP(rec, req)
		if rec.Header().Get("X-Api-Token") != "Token abc" || rec.Header().Get(headersToRemoveHeader) != "authorization" {
			t.Errorf("HTTP answer %v", rec.Header())
		}
	})
}

// 401 denials tell the client how to authenticate (RFC 6750 section 3),
// over gRPC and HTTP; HTTP mode cannot carry a principal, so a service
// with callers is denied there.
func TestChallengesAndHTTPCallers(t *testing.T) {
	s := newServer(t, nativeConfig, fakeSource(func(r tokens.Request) (tokens.Token, error) {
		return tokens.Token{}, &tokens.Error{Class: tokens.ErrSubjectRejected, Code: "invalid_grant"}
	}))
	tests := []struct {
		name, host, bearer, challenge string
		code                          codes.Code
	}{
		{"no-bearer-token", "profile.internal", "", "Bearer", codes.Unauthenticated},
		{"bearer-token-refused", "profile.internal", "Bearer alice", `Bearer error="invalid_token"`, codes.Unauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := envoyRequest(tt.host, "/", "", nil)
			if tt.bearer != "" {
				req.Attributes.Request.Http.Headers["authorization"] = tt.bearer
			}
			resp, _ := s.Check(context.Background(), req)
			var got string
			for _, h := range resp.GetDeniedResponse().GetHeaders() {
				if h.GetHeader().GetKey() == "www-authenticate" {
					got = h.GetHeader().GetValue()
				}
			}
			if codes.Code(resp.GetStatus().GetCode()) != tt.code || got != tt.challenge {
				t.Errorf("gRPC: %v, www-authenticate %q; want %v, %q", codes.Code(resp.GetStatus().GetCode()), got, tt.code, tt.challenge)
			}
			rec := httptest.NewRecorder()
			hr := httptest.NewRequest("GET", "/check/", nil)
			hr.Host = tt.host
			if tt.bearer != "" {
				hr.Header.Set("Authorization", tt.bearer)
			}
			s.HTTPHandler(http.NotFoundHandler()).ServeHTTP(rec, hr)
			if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") != tt.challenge {
				t.Errorf("HTTP: %d, WWW-Authenticate %q; want 401, %q", rec.Code, rec.Header().Get("WWW-Authenticate"), tt.challenge)
			}
		})
	}
	t.Run("http-mode-service-with-callers", func(t *testing.T) {
		rec := httptest.NewRecorder()
		hr := httptest.NewRequest("GET", "/check/", nil)
		hr.Host = "orders.internal"
		s.HTTPHandler(http.NotFoundHandler()).ServeHTTP(rec, hr)
		if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), `"error":"caller_not_allowed"`) || !strings.Contains(rec.Body.String(), "HTTP mode") {
			t.Errorf("HTTP %d %s, want 403 caller_not_allowed naming HTTP mode", rec.Code, rec.Body.String())
		}
	})
}
