package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tokenauthz/tokenauthz/devidp"
	"github.com/tokenauthz/tokenauthz/internal/redistest"
)

const fleetExchangeConfig = `
cache:
  shared: {addresses: [%q], keys_file: %s}
defaults: {issuer: %s, client_id: fleet-exchanger, client_secret: fleet-exchange-s3cret}
services:
  history: {hosts: [history.internal], grant_type: token_exchange, scope: fleet.history.read, audience: fleet-history}
`

// TestFleetTokenExchange: 50 users' requests spread round-robin over 3
// replicas make 50 exchanges in all, each user receives only the token
// issued for them, and Redis holds none of it in clear.
func TestFleetTokenExchange(t *testing.T) {
	idp, err := devidp.Start(t.Context(), devidp.Options{Clients: []devidp.Client{{ID: "fleet-exchanger", Secret: "fleet-exchange-s3cret"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	srv := redistest.Start(t, redistest.Options{})
	dir := t.TempDir()
	cfg := fmt.Sprintf(fleetExchangeConfig, srv.Addr, keysFile(t, dir, "keys", 'x'), idp.Issuer())
	var fleet []*replica
	for i := range 3 {
		fleet = append(fleet, startReplica(t, dir, fmt.Sprintf("replica-%d", i), cfg))
	}
	const users, perUser = 50, 6
	subjects := make([]string, users)
	for u := range users {
		tok, err := idp.UserToken(fmt.Sprintf("fleet-user-%d", u), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		subjects[u] = tok
	}
	got := make([][]string, users)
	var wg sync.WaitGroup
	for u := range users {
		got[u] = make([]string, perUser)
		for i := range perUser {
			r := fleet[(u+i)%len(fleet)] // round robin: every user on every replica
			wg.Go(func() { got[u][i] = injected(t, r.client, request("GET", "history.internal", "/h", subjects[u])) })
		}
	}
	wg.Wait()
	if n := idp.TokenRequests(); n != users {
		t.Errorf("%d exchanges for %d users over %d replicas, want %d", n, users, len(fleet), users)
	}
	secrets := []string{"fleet-exchange-s3cret", "fleet-exchanger", "fleet.history.read", "fleet-history"}
	for u := range users {
		for i, tok := range got[u] {
			rec := issuedFor(t, idp, tok)
			if rec.Subject != fmt.Sprintf("fleet-user-%d", u) || rec.GrantType != devidp.GrantTokenExchange {
				t.Fatalf("user %d check %d got a token issued to %q (%s)", u, i, rec.Subject, rec.GrantType)
			}
			if tok != got[u][0] {
				t.Fatalf("user %d got two tokens from one fleet", u)
			}
		}
		secrets = append(secrets, subjects[u], got[u][0])
	}
	scanRedis(t, srv.Scan(t), secrets)
}
