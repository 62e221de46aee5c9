package e2e

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/tokenauthz/tokenauthz/devidp"
)

const exchangeConfig = `
defaults:
  issuer: %s
  client_id: tokenauthz
  client_secret: exchange-secret
services:
  orders:
    hosts: [orders.internal]
    grant_type: token_exchange
    scope: orders.history
    audience: orders
  profile:
    hosts: [profile.internal]
    grant_type: auto
    scope: profile.read
`

func startDevIdP(t *testing.T) *devidp.IdP {
	t.Helper()
	idp, err := devidp.Start(context.Background(), devidp.Options{Clients: []devidp.Client{{ID: "tokenauthz", Secret: "exchange-secret"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	return idp
}

// issuedFor finds the IdP's record of an access token.
func issuedFor(t *testing.T, idp *devidp.IdP, token string) devidp.Issued {
	t.Helper()
	for _, rec := range idp.Issued() {
		if rec.AccessToken == token {
			return rec
		}
	}
	t.Fatalf("the IdP never issued the injected token")
	return devidp.Issued{}
}

func TestTokenExchange(t *testing.T) {
	idp := startDevIdP(t)
	client := startBroker(t, fmt.Sprintf(exchangeConfig, idp.Issuer())).client
	userToken := func(user string, ttl time.Duration) string {
		tok, err := idp.UserToken(user, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	t.Run("each-user-gets-only-their-own-exchanged-token-under-concurrency", func(t *testing.T) {
		const users, perUser = 20, 10
		subjects := make([]string, users)
		for i := range subjects {
			subjects[i] = userToken(fmt.Sprintf("user-%02d", i), time.Hour)
		}
		got := make([][]string, users)
		var wg sync.WaitGroup
		for u := range users {
			got[u] = make([]string, perUser)
			for k := range perUser {
				wg.Go(func() { got[u][k] = injected(t, client, request("GET", "orders.internal", "/orders", subjects[u])) })
			}
		}
		wg.Wait()
		for u := range users {
			want := fmt.Sprintf("user-%02d", u)
			for _, tok := range got[u] {
				rec := issuedFor(t, idp, tok)
				if rec.Subject != want || rec.GrantType != devidp.GrantTokenExchange ||
					!slices.Equal(rec.Scope, []string{"orders.history"}) || !slices.Equal(rec.Audience, []string{"orders"}) {
					t.Fatalf("%s received %+v", want, rec)
				}
			}
		}
		if n := idp.TokenRequests(); n != users {
			t.Fatalf("%d token requests for %d users, want one exchange per user", n, users)
		}
	})
	t.Run("auto-exchanges-a-caller-token", func(t *testing.T) {
		rec := issuedFor(t, idp, injected(t, client, request("GET", "profile.internal", "/me", userToken("dave", time.Hour))))
		if rec.Subject != "dave" || rec.GrantType != devidp.GrantTokenExchange {
			t.Fatalf("got %+v", rec)
		}
	})
	t.Run("auto-without-caller-token-uses-client-credentials", func(t *testing.T) {
		rec := issuedFor(t, idp, injected(t, client, request("GET", "profile.internal", "/me", "")))
		if rec.Subject != "tokenauthz" || rec.GrantType != devidp.GrantClientCredentials || !slices.Equal(rec.Scope, []string{"profile.read"}) {
			t.Fatalf("got %+v", rec)
		}
	})

	denials := []struct {
		name        string
		callerToken string
		code        codes.Code
		status      int
		reason      string
	}{
		{"missing-caller-token-is-401", "", codes.Unauthenticated, 401, "missing_subject_token"},
		{"garbage-caller-token-is-401", "not-a-token", codes.Unauthenticated, 401, "subject_token_rejected"},
		{"expired-caller-token-is-401", userToken("erin", -time.Minute), codes.Unauthenticated, 401, "subject_token_rejected"},
	}
	for _, tt := range denials {
		t.Run(tt.name, func(t *testing.T) {
			d := denied(t, client, request("GET", "orders.internal", "/orders", tt.callerToken))
			if d.Code != tt.code || d.HTTPStatus != tt.status || d.Error != tt.reason {
				t.Fatalf("got %+v", d)
			}
		})
	}
	t.Run("unknown-host-is-403", func(t *testing.T) {
		d := denied(t, client, request("GET", "nowhere.internal", "/", ""))
		if d.Code != codes.PermissionDenied || d.HTTPStatus != 403 || d.Error != "no_matching_service" {
			t.Fatalf("got %+v", d)
		}
	})
	t.Run("request-without-http-attributes-is-400", func(t *testing.T) {
		req := request("GET", "orders.internal", "/", "")
		req.Attributes.Request.Http = nil
		resp, err := client.Check(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if codes.Code(resp.GetStatus().GetCode()) != codes.InvalidArgument || resp.GetDeniedResponse().GetStatus().GetCode() != 400 {
			t.Fatalf("got %v", resp)
		}
	})
}
