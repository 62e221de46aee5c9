package authz_test

import (
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

	"github.com/tokenauthz/tokenauthz/authz"
	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/internal/metrics"
	"github.com/tokenauthz/tokenauthz/tokens"
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
func fetchedToken(b *testing.B, access string) tokens.Token {
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

// BenchmarkCheck is one warm-cache Check through Server.Check, as the gRPC
// handler calls it (without gRPC's own decoding and encoding: the floor of
// `go run ./bench run` measures those). Sources:
//
//   - fixed-source: a TokenSource answering a fixed token, no cache;
//   - warm-source: the real tokens.Source, its cache warmed;
//   - warm-source-metrics: the same, plus the Prometheus observer tokenauthz
//     runs with.
func BenchmarkCheck(b *testing.B) {
	cfg, err := config.Parse("bench.yaml", []byte(benchConfig))
	if err != nil {
		b.Fatal(err)
	}
	tok := fetchedToken(b, jwtLike(690))
	user := jwtLike(650)
	requests := []struct {
		name string
		req  *authv3.CheckRequest
	}{
		{"client-credentials", benchRequest("/v1/orders/100042?expand=items&currency=EUR", user)},
		{"token-exchange", benchRequest("/v1/orders/history", user)},
	}
	newWarm := func() *tokens.Source {
		return tokens.NewSource(tokens.Options{Fetcher: fixedFetcher{tok}, RefreshBefore: -1})
	}
	sources := []struct {
		name string
		make func() (authz.TokenSource, authz.Observer)
	}{
		{"fixed-source", func() (authz.TokenSource, authz.Observer) { return fixedSource{tok}, nil }},
		{"warm-source", func() (authz.TokenSource, authz.Observer) { return newWarm(), nil }},
		{"warm-source-metrics", func() (authz.TokenSource, authz.Observer) {
			src := newWarm()
			return src, metrics.New(src.Stats)
		}},
	}
	for _, s := range sources {
		for _, r := range requests {
			b.Run(s.name+"/"+r.name, func(b *testing.B) {
				src, obs := s.make()
				srv := authz.New(cfg, src, authz.Options{Observer: obs})
				ctx := context.Background()
				resp, err := srv.Check(ctx, r.req) // warms the cache
				if err != nil || resp.GetStatus().GetCode() != 0 {
					b.Fatalf("warm-up: %v %v", resp, err)
				}
				b.ReportAllocs()
				for b.Loop() {
					if _, err := srv.Check(ctx, r.req); err != nil {
						b.Fatal(err)
					}
				}
				if ws, ok := src.(*tokens.Source); ok {
					if st := ws.Stats(); st.Fetches != 1 {
						b.Fatalf("fetches = %d, want 1 (every timed Check a cache hit)", st.Fetches)
					}
				}
			})
		}
	}
}
