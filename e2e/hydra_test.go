package e2e

import (
	"fmt"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/tokenauthz/tokenauthz/internal/hydra"
)

const hydraConfig = `
defaults:
  issuer: %s
  client_id: tokenauthz
  client_secret: hydra-secret
services:
  orders:
    hosts: [orders.internal]
    path_prefix: /v1
    grant_type: client_credentials
    scope: orders.read
    endpoints:
      create: {path: /orders, methods: [POST], scope: orders.write}
      admin: {path: /admin, scope: orders.admin}
  posting:
    hosts: [posting.internal]
    client_id: poster
    client_secret: poster-secret
    client_auth: post
    grant_type: client_credentials
    scope: [orders.read, orders.write]
  wrongsecret:
    hosts: [wrong.internal]
    client_secret: not-the-secret
    grant_type: client_credentials
  down:
    hosts: [down.internal]
    token_url: %s
    grant_type: client_credentials
`

func TestHydraClientCredentials(t *testing.T) {
	h := hydra.Start(t)
	h.CreateClient(t, hydra.Client{ID: "tokenauthz", Secret: "hydra-secret", Scopes: []string{"orders.read", "orders.write"}})
	h.CreateClient(t, hydra.Client{ID: "poster", Secret: "poster-secret", Scopes: []string{"orders.read", "orders.write"}, AuthMethod: "client_secret_post"})
	client := startBroker(t, fmt.Sprintf(hydraConfig, h.Issuer(), closedURL(t))).client

	t.Run("200-concurrent-cold-checks-make-one-token-request-for-the-service-scope", func(t *testing.T) {
		var wg sync.WaitGroup
		tokens := make([]string, 200)
		for i := range tokens {
			host := fmt.Sprintf("orders.internal:%d", 8000+i%3) // any port: same service, same key
			wg.Go(func() { tokens[i] = injected(t, client, request("GET", host, fmt.Sprintf("/v1/orders/%d", i), "")) })
		}
		wg.Wait()
		if n := h.TokenRequests(); n != 1 {
			t.Fatalf("%d token requests for 200 concurrent checks of one key, want 1", n)
		}
		for _, tok := range tokens[1:] {
			if tok != tokens[0] {
				t.Fatal("checks for one key got different tokens")
			}
		}
		got := h.Introspect(t, tokens[0])
		if !got.Active || got.ClientID != "tokenauthz" || got.Scope != "orders.read" {
			t.Fatalf("introspection %+v, want active token of tokenauthz for orders.read", got)
		}
	})
	t.Run("endpoint-scope-gets-its-own-token", func(t *testing.T) {
		read := injected(t, client, request("GET", "orders.internal", "/v1/orders", ""))
		write := injected(t, client, request("POST", "orders.internal", "/v1/orders", ""))
		if read == write {
			t.Fatal("read and write endpoints share a token")
		}
		if got := h.Introspect(t, write); got.Scope != "orders.write" {
			t.Fatalf("write endpoint token has scope %q", got.Scope)
		}
	})
	t.Run("client-secret-post-with-two-scopes", func(t *testing.T) {
		tok := injected(t, client, request("GET", "posting.internal", "/", ""))
		if got := h.Introspect(t, tok); !got.Active || got.ClientID != "poster" || got.Scope != "orders.read orders.write" {
			t.Fatalf("introspection %+v", got)
		}
	})
	t.Run("scope-the-client-may-not-have-is-500", func(t *testing.T) {
		d := denied(t, client, request("GET", "orders.internal", "/v1/admin", ""))
		if d.Code != codes.Internal || d.HTTPStatus != 500 || d.Error != "client_config_rejected" {
			t.Fatalf("got %+v", d)
		}
	})
	t.Run("wrong-client-secret-is-500", func(t *testing.T) {
		d := denied(t, client, request("GET", "wrong.internal", "/", ""))
		if d.Code != codes.Internal || d.HTTPStatus != 500 || d.Error != "client_config_rejected" {
			t.Fatalf("got %+v", d)
		}
	})
	t.Run("unreachable-token-endpoint-is-503", func(t *testing.T) {
		d := denied(t, client, request("GET", "down.internal", "/", ""))
		if d.Code != codes.Unavailable || d.HTTPStatus != 503 || d.Error != "token_endpoint_unavailable" {
			t.Fatalf("got %+v", d)
		}
	})
}

// closedURL is a token URL on a loopback port nothing listens on.
func closedURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + "/oauth2/token"
}
