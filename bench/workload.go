package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// benchConfig is tokenauthz's configuration in every benchmark: one service
// on client credentials with a token-exchange endpoint, matched by host and
// path (no context extensions, so matching is exercised too).
const benchConfig = `listen: {grpc: %q, http: %q, admin: "127.0.0.1:0"}
cache: {expiry_skew: %s, refresh_before: %s, max_entries: %d%s}
defaults:
  issuer: %s
  client_id: %s
  client_secret: %s
services:
  orders:
    hosts: [orders.internal]
    path_prefix: /v1
    grant_type: client_credentials
    scope: [orders.read, orders.list]
    endpoints:
      history: {path: /orders/history, grant_type: token_exchange, scope: orders.history, audience: orders}
`

// cacheOpts are tokenauthz's cache settings for one benchmark.
type cacheOpts struct {
	skew, refreshBefore time.Duration
	maxEntries          int
	shared              string // cache.shared as a YAML flow mapping; "" for none
}

var defaultCache = cacheOpts{skew: 30 * time.Second, refreshBefore: 60 * time.Second, maxEntries: 100000}

func configText(grpcAddr, httpAddr, issuer string, c cacheOpts) string {
	return fmt.Sprintf(benchConfig, grpcAddr, httpAddr, c.skew, c.refreshBefore, c.maxEntries, c.sharedKey(), issuer, idpClientID, idpClientSecret)
}

// sharedKey is the cache.shared entry of the flow mapping, or nothing.
func (c cacheOpts) sharedKey() string {
	if c.shared == "" {
		return ""
	}
	return ", shared: " + c.shared
}

// stack is what every subcommand runs on: the built binaries and the IdP
// process.
type stack struct {
	bins    *binaries
	idpProc *proc
	idp     *idpClient
}

// startStack builds the binaries and starts the IdP, issuing tokens that
// live ttl.
func startStack(ctx context.Context, out io.Writer, ttl time.Duration) (*stack, error) {
	bins, err := buildBinaries(ctx, out)
	if err != nil {
		return nil, err
	}
	idpProc, idp, err := startIdP(ctx, bins, ttl)
	if err != nil {
		bins.Close()
		return nil, err
	}
	return &stack{bins: bins, idpProc: idpProc, idp: idp}, nil
}

func (s *stack) Close() {
	s.idpProc.Stop()
	s.bins.Close()
}

// lowerPriority runs the rest of the program at nice (see niceSelf); when
// it cannot, it says so and sets *nice to 0, the priority in effect.
func lowerPriority(out io.Writer, nice *int) {
	if err := niceSelf(*nice); err != nil {
		fmt.Fprintf(out, "warning: %v; running at the current priority\n", err)
		*nice = 0
	}
}

// startIdP runs `bench idp` as a process issuing tokens that live ttl.
func startIdP(ctx context.Context, bins *binaries, ttl time.Duration) (*proc, *idpClient, error) {
	p, err := startProc(ctx, bins.dir, "idp", procOptions{}, bins.bench, "idp", "--ttl", ttl.String())
	if err != nil {
		return nil, nil, err
	}
	line, err := p.FirstLine(30 * time.Second)
	if err != nil {
		p.Stop()
		return nil, nil, err
	}
	c := &idpClient{}
	if err := json.Unmarshal([]byte(line), c); err != nil {
		p.Stop()
		return nil, nil, fmt.Errorf("idp said %q: %w", line, err)
	}
	return p, c, nil
}

// server is a server under test running as a process.
type server struct {
	name     string
	proc     *proc
	grpcAddr string
	httpAddr string // tokenauthz only: /metrics, /readyz
}

// startTokenauthz runs the tokenauthz binary against issuer and waits
// until it has discovered the token endpoint.
func startTokenauthz(ctx context.Context, bins *binaries, issuer string, c cacheOpts, o procOptions) (*server, error) {
	return startTokenauthzWith(ctx, bins, "tokenauthz", o, func(grpcAddr, httpAddr string) string {
		return configText(grpcAddr, httpAddr, issuer, c)
	})
}

// startTokenauthzWith runs tokenauthz as name (its config and log files
// are named after it) on the configuration text writes for two free
// addresses, and waits until it is ready.
func startTokenauthzWith(ctx context.Context, bins *binaries, name string, o procOptions, text func(grpcAddr, httpAddr string) string) (*server, error) {
	grpcAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(bins.dir, name+".yaml")
	if err := os.WriteFile(cfg, []byte(text(grpcAddr, httpAddr)), 0o600); err != nil {
		return nil, err
	}
	p, err := startProc(ctx, bins.dir, name, o, bins.tokenauthz, "serve", "--config", cfg, "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	if err := waitOK(ctx, "http://"+httpAddr+"/readyz", 30*time.Second); err != nil {
		p.Stop()
		return nil, fmt.Errorf("%s: %w (log: %s)", name, err, p.tail())
	}
	return &server{name: "tokenauthz", proc: p, grpcAddr: grpcAddr, httpAddr: httpAddr}, nil
}

// pair is what the floor comparison drives: tokenauthz, its cache warmed,
// and the floor injecting a header as long as tokenauthz's, each with a
// client of conns connections.
type pair struct {
	taClient, flClient *client
	fl                 *server
	valueLen           int
}

// startPair warms ta (every key of reqs fetched once, so that the
// measured phases are cache hits only) and starts the floor, with more
// flags of `bench floor`.
func startPair(ctx context.Context, bins *binaries, ta *server, reqs []*authv3.CheckRequest, po procOptions, conns int, floorFlags ...string) (*pair, error) {
	p := &pair{}
	var err error
	if p.taClient, err = dial(ta.grpcAddr, conns); err != nil {
		return nil, err
	}
	if err = p.taClient.checkAll(ctx, reqs, 32, 10*time.Second); err != nil {
		p.Close()
		return nil, fmt.Errorf("warming tokenauthz: %w", err)
	}
	if p.valueLen, err = headerLen(ctx, p.taClient, reqs); err == nil {
		if p.fl, err = startFloor(ctx, bins, p.valueLen, po, floorFlags...); err == nil {
			p.flClient, err = dial(p.fl.grpcAddr, conns)
		}
	}
	if err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Close stops the floor and closes the clients; tokenauthz is the caller's.
func (p *pair) Close() {
	for _, c := range []*client{p.taClient, p.flClient} {
		if c != nil {
			c.Close()
		}
	}
	if p.fl != nil {
		p.fl.proc.Stop()
	}
}

// startFloor runs the floor server injecting a header valueLen long, with
// more flags of `bench floor`.
func startFloor(ctx context.Context, bins *binaries, valueLen int, o procOptions, flags ...string) (*server, error) {
	p, err := startProc(ctx, bins.dir, "floor", o, bins.bench, append([]string{"floor", "--value-len", fmt.Sprint(valueLen)}, flags...)...)
	if err != nil {
		return nil, err
	}
	line, err := p.FirstLine(30 * time.Second)
	if err != nil {
		p.Stop()
		return nil, err
	}
	var addr string
	if _, err := fmt.Sscanf(line, "listening %s", &addr); err != nil {
		p.Stop()
		return nil, fmt.Errorf("floor said %q", line)
	}
	return &server{name: "floor", proc: p, grpcAddr: addr}, nil
}

// Request kinds of the workload.
const (
	kindClientCredentials = iota
	kindExchange
)

// workload is two CheckRequests per user, one per grant: GET
// /v1/orders/<n> (client credentials) and GET /v1/orders/history (token
// exchange of the user's JWT). Each carries the headers Envoy forwards from
// a browser-ish client, 14 of them, the user's bearer token among them.
func workload(users []string) []*authv3.CheckRequest {
	out := make([]*authv3.CheckRequest, 0, 2*len(users))
	for i, u := range users {
		out = append(out, checkRequest(u, kindClientCredentials, i), checkRequest(u, kindExchange, i))
	}
	return out
}

func checkRequest(userJWT string, kind, i int) *authv3.CheckRequest {
	path := fmt.Sprintf("/v1/orders/%d?expand=items&currency=EUR", 100000+i)
	if kind == kindExchange {
		path = "/v1/orders/history"
	}
	reqID := fmt.Sprintf("7f3c2a10-%04x-4e1b-9a6d-%012x", kind, i)
	headers := map[string]string{
		":authority":        "orders.internal",
		":method":           "GET",
		":path":             path,
		":scheme":           "https",
		"user-agent":        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
		"accept":            "application/json, text/plain, */*",
		"accept-encoding":   "gzip, deflate, br, zstd",
		"accept-language":   "en-US,en;q=0.9,de;q=0.8",
		"x-forwarded-for":   fmt.Sprintf("203.0.113.%d, 10.0.0.7", i%250+1),
		"x-forwarded-proto": "https",
		"x-request-id":      reqID,
		"traceparent":       fmt.Sprintf("00-4bf92f3577b34da6a3ce929d0e0e%04x-00f067aa0ba902b7-01", i%65536),
		"cookie":            "session=9c1d7e02b54f4a8e8b3a1f6d2c7e5a90; theme=dark; consent=analytics:0,ads:0",
		"authorization":     "Bearer " + userJWT,
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      peer("10.0.0.7", 48512),
		Destination: peer("10.0.3.21", 8443),
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.New(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)),
			Http: &authv3.AttributeContext_HttpRequest{
				Id: reqID, Method: "GET", Host: "orders.internal", Path: path,
				Scheme: "https", Protocol: "HTTP/2", Headers: headers,
			},
		},
	}}
}

func peer(ip string, port uint32) *authv3.AttributeContext_Peer {
	return &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
		SocketAddress: &corev3.SocketAddress{Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}},
	}}}
}

// okWithHeader accepts only an OK answer that injects the authorization
// header, as both servers give for every request of the workload.
func okWithHeader(resp *authv3.CheckResponse) error {
	if c := resp.GetStatus().GetCode(); c != 0 {
		return fmt.Errorf("status %d: %s", c, resp.GetDeniedResponse().GetBody())
	}
	hs := resp.GetOkResponse().GetHeaders()
	if len(hs) != 1 || hs[0].GetHeader().GetKey() != "authorization" || len(hs[0].GetHeader().GetValue()) < 20 {
		return fmt.Errorf("unexpected headers %v", hs)
	}
	return nil
}
