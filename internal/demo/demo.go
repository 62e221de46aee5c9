// Package demo runs tokenauthz end to end on one machine: a development
// OpenID provider (devidp, NOT for production), tokenauthz serving an example
// configuration, and real gRPC checks whose injected headers it prints.
package demo

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/devidp"
	"github.com/tokenauthz/tokenauthz/internal/app"
)

// Options are the demo's listen addresses (host:port; port 0 picks one).
type Options struct {
	GRPCAddr  string // tokenauthz ext_authz gRPC
	HTTPAddr  string // tokenauthz HTTP: forward-auth, /check, health, metrics
	AdminAddr string // tokenauthz admin: the status page
	IdPAddr   string // the development OpenID provider
}

const clientID, clientSecret = "tokenauthz", "demo-secret"

// Config is the demo's configuration: listen addresses (gRPC, HTTP, admin) and the IdP's issuer URL fill it.
const Config = `# tokenauthz demo configuration
listen: {grpc: %q, http: %q, admin: %q}
defaults:
  issuer: %s
  client_id: tokenauthz
  client_secret: demo-secret
services:
  orders:
    hosts: [orders.internal]
    path_prefix: /v1
    grant_type: client_credentials
    scope: orders.read
    endpoints:
      create: {path: /orders, methods: [POST], scope: orders.write}
      history: {path: /orders/history, grant_type: token_exchange, scope: orders.history, audience: orders}
  profile:
    hosts: [profile.internal]
    grant_type: auto
    scope: profile.read
`

// Run starts the demo, prints what it does, and serves until ctx ends.
func Run(ctx context.Context, out io.Writer, log *slog.Logger, opts Options) error {
	idp, err := devidp.Start(ctx, devidp.Options{
		Addr:    opts.IdPAddr,
		Clients: []devidp.Client{{ID: clientID, Secret: clientSecret}},
	})
	if err != nil {
		return fmt.Errorf("start development IdP: %w", err)
	}
	defer idp.Close()

	text := fmt.Sprintf(Config, opts.GRPCAddr, opts.HTTPAddr, opts.AdminAddr, idp.Issuer())
	cfg, err := config.Parse("demo.yaml", []byte(text))
	if err != nil {
		return err
	}
	a, err := app.Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "== development OpenID provider (devidp, NOT for production) at %s\n", idp.Issuer())
	fmt.Fprintf(out, "== tokenauthz serving ext_authz gRPC on %s with this configuration:\n\n%s\n", a.GRPCAddr(), text)

	alice, err := idp.UserToken("alice", time.Hour)
	if err != nil {
		return err
	}
	if err := showChecks(ctx, out, a.GRPCAddr(), alice); err != nil {
		return err
	}
	fmt.Fprintf(out, "\n== try it yourself (Ctrl-C stops the demo):\n")
	fmt.Fprintf(out, "# grpcurl: go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3 (or: bash scripts/tools.sh grpcurl, into .tools/bin)\n")
	fmt.Fprintf(out, "# the second line carries a token for alice from this run's development IdP (a new key each run): valid only while this demo runs\n")
	fmt.Fprintf(out, "grpcurl -plaintext -d '%s' %s envoy.service.auth.v3.Authorization/Check\n",
		grpcurlBody("GET", "orders.internal", "/v1/orders/42", ""), a.GRPCAddr())
	fmt.Fprintf(out, "grpcurl -plaintext -d '%s' %s envoy.service.auth.v3.Authorization/Check\n",
		grpcurlBody("GET", "orders.internal", "/v1/orders/history", alice), a.GRPCAddr())
	fmt.Fprintf(out, "curl -i -H 'X-Forwarded-Method: POST' -H 'X-Forwarded-Host: orders.internal' -H 'X-Forwarded-Uri: /v1/orders' http://%s/forward-auth\n", a.HTTPAddr())
	fmt.Fprintf(out, "curl -i http://%s/check/v1/orders/42 -H 'Host: orders.internal'\n", a.HTTPAddr())
	fmt.Fprintf(out, "curl -s http://%s/metrics | grep ^tokenauthz_\n", a.HTTPAddr())
	fmt.Fprintf(out, "# the status page (services, cache, recent denials, an explain form): open http://%s/status\n", a.AdminAddr())
	return a.Wait(ctx, 0) // Ctrl-C stops the demo at once: no load balancer to drain
}

type check struct {
	title, method, host, path, callerToken string
}

func showChecks(ctx context.Context, out io.Writer, addr, alice string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)
	for _, c := range []check{
		{"client credentials, service scope", "GET", "orders.internal", "/v1/orders/42", ""},
		{"client credentials, endpoint scope", "POST", "orders.internal", "/v1/orders", ""},
		{"token exchange of alice's token", "GET", "orders.internal", "/v1/orders/history", alice},
		{"auto grant with a caller token: exchange", "GET", "profile.internal", "/me", alice},
		{"unknown host: denied", "GET", "unknown.internal", "/", ""},
	} {
		resp, err := client.Check(ctx, checkRequest(c.method, c.host, c.path, c.callerToken))
		if err != nil {
			return fmt.Errorf("check %s: %w", c.title, err)
		}
		fmt.Fprintf(out, "\n-- %s: %s http://%s%s\n", c.title, c.method, c.host, c.path)
		if denied := resp.GetDeniedResponse(); denied != nil {
			fmt.Fprintf(out, "   denied %d: %s\n", denied.GetStatus().GetCode(), denied.GetBody())
			continue
		}
		for _, h := range resp.GetOkResponse().GetHeaders() {
			v := h.GetHeader().GetValue()
			fmt.Fprintf(out, "   %s: %s...\n   token claims: %s\n", h.GetHeader().GetKey(), v[:min(len(v), 40)], claims(v))
		}
	}
	return nil
}

func checkRequest(method, host, path, callerToken string) *authv3.CheckRequest {
	headers := map[string]string{":authority": host, ":method": method, ":path": path, "x-request-id": "demo-" + strings.ToLower(method)}
	if callerToken != "" {
		headers["authorization"] = "Bearer " + callerToken
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: method, Host: host, Path: path, Headers: headers},
	}}}
}

// grpcurlBody is the CheckRequest as grpcurl's JSON.
func grpcurlBody(method, host, path, callerToken string) string {
	b, _ := json.Marshal(map[string]any{"attributes": map[string]any{"request": map[string]any{"http": map[string]any{
		"method": method, "host": host, "path": path, "headers": checkRequest(method, host, path, callerToken).GetAttributes().GetRequest().GetHttp().GetHeaders(),
	}}}})
	return string(b)
}

// claims shows the parts of a JWT access token that tell which grant made it.
func claims(bearer string) string {
	parts := strings.Split(strings.TrimPrefix(bearer, "Bearer "), ".")
	if len(parts) != 3 {
		return "(not a JWT)"
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "(undecodable)"
	}
	var c map[string]any
	if json.Unmarshal(payload, &c) != nil {
		return "(undecodable)"
	}
	return fmt.Sprintf("sub=%v scope=%v aud=%v", c["sub"], c["scope"], c["aud"])
}
