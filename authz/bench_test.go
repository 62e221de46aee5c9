package authz_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tokenauthz/tokenauthz/authz"
	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/internal/metrics"
	"github.com/tokenauthz/tokenauthz/internal/redistest"
	"github.com/tokenauthz/tokenauthz/tokens"
	"github.com/tokenauthz/tokenauthz/tokens/shared"
)

// benchConfig is the configuration of `go run ./bench`: client credentials
// for the service, token exchange on one endpoint, matched by host and path.
const benchConfig = `
defaults:
  token_url: http://127.0.0.1:1/token
  client_id: tokenauthz
  client_secret: bench-secret
services:
  orders:
    hosts: [orders.internal]
    path_prefix: /v1
    grant_type: client_credentials
    scope: [orders.read, orders.list]
    endpoints:
      history: {path: /orders/history, grant_type: token_exchange, scope: orders.history, audience: orders}
`

// fixedSource is a TokenSource that always answers the same token: Check
// without any cache cost.
type fixedSource struct{ tok tokens.Token }

func (f fixedSource) Token(context.Context, tokens.Request) (tokens.Token, error) { return f.tok, nil }

// fixedFetcher is the token endpoint behind a real tokens.Source; after the
// warm-up it is never called.
type fixedFetcher struct{ tok tokens.Token }

func (f fixedFetcher) Fetch(context.Context, string, tokens.Request) (tokens.Token, error) {
	return f.tok, nil
}

// fetchedToken is access as a tokens.Client returns it from a token
// endpoint: the form the cache holds and Check sends.
func fetchedToken(b testing.TB, access string) tokens.Token {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600}`, access)
	}))
	defer srv.Close()
	tok, err := (&tokens.Client{}).Fetch(context.Background(), srv.URL, tokens.Request{GrantType: tokens.GrantClientCredentials})
	if err != nil {
		b.Fatal(err)
	}
	return tok
}

// jwtLike is a JWT-shaped string of about n bytes, expiring in a day.
func jwtLike(n int) string {
	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"alg":"RS256","kid":"k1","typ":"JWT"}`))
	payload := enc.EncodeToString(fmt.Appendf(nil, `{"iss":"http://127.0.0.1:9400","sub":"alice","aud":["orders"],"exp":%d,"scope":"openid profile","jti":"%s"}`,
		time.Now().Add(24*time.Hour).Unix(), strings.Repeat("j", 40)))
	sig := strings.Repeat("s", max(n-len(header)-len(payload)-2, 16))
	return header + "." + payload + "." + sig
}

// benchRequest is a CheckRequest as Envoy sends it for a browser-ish client:
// 14 headers, a ~650-byte bearer JWT, peers and a timestamp.
func benchRequest(path, bearer string) *authv3.CheckRequest {
	peer := func(ip string, port uint32) *authv3.AttributeContext_Peer {
		return &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}},
		}}}
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: peer("10.0.0.7", 48512), Destination: peer("10.0.3.21", 8443),
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "7f3c2a10-0001-4e1b-9a6d-000000000001", Method: "GET", Host: "orders.internal", Path: path,
			Scheme: "https", Protocol: "HTTP/2",
			Headers: map[string]string{
				":authority": "orders.internal", ":method": "GET", ":path": path, ":scheme": "https",
				"user-agent":        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
				"accept":            "application/json, text/plain, */*",
				"accept-encoding":   "gzip, deflate, br, zstd",
				"accept-language":   "en-US,en;q=0.9,de;q=0.8",
				"x-forwarded-for":   "203.0.113.9, 10.0.0.7",
				"x-forwarded-proto": "https",
				"x-request-id":      "7f3c2a10-0001-4e1b-9a6d-000000000001",
				"traceparent":       "00-4bf92f3577b34da6a3ce929d0e0e0001-00f067aa0ba902b7-01",
				"cookie":            "session=9c1d7e02b54f4a8e8b3a1f6d2c7e5a90; theme=dark; consent=analytics:0,ads:0",
				"authorization":     "Bearer " + bearer,
			},
		}},
	}}
}

// featuresConfig is benchConfig with the features of the issues before
// the performance one switched on: callers, a route claimed through route
// metadata, and the shared cache (its address filled in); dynamic metadata
// is in every response.
const featuresConfig = benchConfig + `    callers: ["spiffe://cluster.local/ns/shop/sa/web"]
    routes: ["HTTPRoute/shop/orders"]
`

// withFeatures adds to req what Envoy sends for those features: the
// source principal, the route's tokenauthz metadata and Envoy Gateway's
// route identity.
func withFeatures(req *authv3.CheckRequest, endpoint string) *authv3.CheckRequest {
	attrs := req.GetAttributes()
	attrs.Source.Principal = "spiffe://cluster.local/ns/shop/sa/web"
	route, _ := structpb.NewStruct(map[string]any{"service": "orders", "endpoint": endpoint})
	gateway, _ := structpb.NewStruct(map[string]any{"resources": []any{map[string]any{"kind": "HTTPRoute", "namespace": "shop", "name": "orders"}}})
	attrs.RouteMetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		authz.MetadataNamespace: route, authz.EnvoyGatewayMetadataNamespace: gateway,
	}}
	return req
}

// sharedTier is cache.shared on a real Redis, started for tb.
func sharedTier(tb testing.TB) *shared.Cache {
	redis := redistest.Start(tb, redistest.Options{})
	tier, err := shared.New(shared.Options{Addresses: []string{redis.Addr}, Prefix: "bench:", Keys: [][]byte{bytes.Repeat([]byte{7}, 32)}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { tier.Close() })
	return tier
}

// BenchmarkCheck is one warm-cache check, three ways (see checkBy): from
// a decoded CheckRequest to the response message, and from the request's
// bytes to the response's with grpc-go's proto codec or with the
// service's own, without gRPC's transport (the floor of `go run ./bench
// run` measures that). Setups:
//
//   - fixed-source: a TokenSource answering a fixed token, no cache;
//   - warm-source: the real tokens.Source, its cache warmed;
//   - warm-source-metrics: the same, plus the Prometheus observer tokenauthz
//     runs with;
//   - features: warm-source-metrics under featuresConfig, with requests
//     carrying a principal and route metadata, and cache.shared on a real
//     Redis (a hit is served by the first tier; Redis is not asked).
func BenchmarkCheck(b *testing.B) {
	tok := fetchedToken(b, jwtLike(690))
	user := jwtLike(650)
	newWarm := func(shared tokens.Tier) *tokens.Source {
		return tokens.NewSource(tokens.Options{Fetcher: fixedFetcher{tok}, RefreshBefore: -1, Shared: shared})
	}
	type setup struct {
		src      authz.TokenSource
		obs      authz.Observer
		config   string
		features bool
	}
	setups := []struct {
		name string
		make func(b *testing.B) setup
	}{
		{"fixed-source", func(*testing.B) setup { return setup{src: fixedSource{tok}, config: benchConfig} }},
		{"warm-source", func(*testing.B) setup { return setup{src: newWarm(nil), config: benchConfig} }},
		{"warm-source-metrics", func(*testing.B) setup {
			src := newWarm(nil)
			return setup{src: src, obs: metrics.New(src.Stats), config: benchConfig}
		}},
		{"features", func(b *testing.B) setup {
			src := newWarm(sharedTier(b))
			return setup{src: src, obs: metrics.New(src.Stats), config: featuresConfig, features: true}
		}},
	}
	requests := []struct {
		name, path, endpoint string
	}{
		{"client-credentials", "/v1/orders/100042?expand=items&currency=EUR", ""},
		{"token-exchange", "/v1/orders/history", "history"},
	}
	for _, st := range setups {
		for _, r := range requests {
			for _, how := range []string{"message", "standard", "wire"} {
				b.Run(st.name+"/"+r.name+"/"+how, func(b *testing.B) {
					s := st.make(b)
					cfg, err := config.Parse("bench.yaml", []byte(s.config))
					if err != nil {
						b.Fatal(err)
					}
					req := benchRequest(r.path, user)
					if s.features {
						req = withFeatures(req, r.endpoint)
					}
					srv := authz.New(cfg, s.src, authz.Options{Observer: s.obs})
					check := checkBy(b, how, srv, req)
					check() // warms the cache
					b.ReportAllocs()
					for b.Loop() {
						check()
					}
					if ws, ok := s.src.(*tokens.Source); ok {
						if st := ws.Stats(); st.Fetches != 1 {
							b.Fatalf("fetches = %d, want 1 (every timed check a cache hit)", st.Fetches)
						}
					}
				})
			}
		}
	}
}

// checkBy returns one allowed check of req on srv, made how: "message"
// (Server.Check alone), "standard" (grpc-go's proto codec around it: what
// the service ran before its own codec, and what the floor runs) or "wire"
// (the service's codec and handler).
func checkBy(b testing.TB, how string, srv *authz.Server, req *authv3.CheckRequest) func() {
	ctx := context.Background()
	if how == "message" {
		return func() {
			resp, err := srv.Check(ctx, req)
			if err != nil || resp.GetStatus().GetCode() != 0 {
				b.Fatalf("check: %v %v", resp, err)
			}
		}
	}
	wire, err := proto.Marshal(req)
	if err != nil {
		b.Fatal(err)
	}
	if how == "standard" {
		codec := encoding.GetCodecV2(grpcproto.Name)
		data := mem.BufferSlice{mem.SliceBuffer(wire)}
		return func() {
			var decoded authv3.CheckRequest
			if err := codec.Unmarshal(data, &decoded); err != nil {
				b.Fatal(err)
			}
			resp, err := srv.Check(ctx, &decoded)
			if err != nil || resp.GetStatus().GetCode() != 0 {
				b.Fatalf("check: %v %v", resp, err)
			}
			out, err := codec.Marshal(resp)
			if err != nil {
				b.Fatal(err)
			}
			out.Free()
		}
	}
	check := authz.WireCheck(srv, wire)
	return func() {
		out, err := check(ctx)
		if err != nil || out.Len() == 0 {
			b.Fatalf("check: %d bytes, %v", out.Len(), err)
		}
	}
}
