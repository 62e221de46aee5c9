package e2e

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/tokenauthz/tokenauthz/internal/slowidp"
)

// TestFloodOfBogusSubjectTokens: each distinct bearer token on a
// token-exchange route is its own cache key, so an unauthenticated client
// could drive the IdP one token request (and one connection) per request.
// With max_in_flight 8 the IdP never sees more than 8 at once, checks that
// cannot start are answered at their deadline, the cached client-credentials
// token keeps being served and is refreshed during the flood, and a new
// user gets an exchange once it ends.
func TestFloodOfBogusSubjectTokens(t *testing.T) {
	const maxInFlight, attackers, deadline = 8, 300, 250 * time.Millisecond
	idp, err := slowidp.Start(300*time.Millisecond, 4*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idp.Close)
	b := startBroker(t, fmt.Sprintf(`
token_request: {timeout: 2s, max_in_flight: %d}
cache: {expiry_skew: 1s, refresh_before: 2s}
defaults: {token_url: %s, client_id: c, client_secret: s}
services:
  cc: {hosts: [cc.internal], grant_type: client_credentials}
  exchange: {hosts: [exchange.internal], grant_type: token_exchange}
`, maxInFlight, idp.TokenURL()))
	check := func(host, bearer string, timeout time.Duration) (codes.Code, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		resp, err := b.client.Check(ctx, request("GET", host, "/", bearer))
		return codes.Code(resp.GetStatus().GetCode()), err
	}
	if code, err := check("cc.internal", "", 5*time.Second); err != nil || code != codes.OK {
		t.Fatalf("warming client credentials: %v %v", code, err)
	}
	goroutinesBefore := runtime.NumGoroutine()

	floodCtx, stop := context.WithTimeout(context.Background(), 3*time.Second)
	defer stop()
	var wg sync.WaitGroup
	var floodChecks, ccChecks, ccFailures atomic.Int64
	for a := range attackers {
		wg.Go(func() {
			for i := 0; floodCtx.Err() == nil; i++ {
				check("exchange.internal", fmt.Sprintf("bogus-%d-%d", a, i), deadline)
				floodChecks.Add(1)
			}
		})
	}
	ccBefore := idp.Counts().ClientCredentials
	wg.Go(func() {
		for floodCtx.Err() == nil {
			ccChecks.Add(1)
			if code, err := check("cc.internal", "", deadline); err != nil || code != codes.OK {
				ccFailures.Add(1)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	wg.Wait()
	c := idp.Counts()
	ccRefreshes := c.ClientCredentials - ccBefore
	if c.PeakInFlight > maxInFlight {
		t.Errorf("the IdP saw %d token requests at once, want at most %d", c.PeakInFlight, maxInFlight)
	}
	if c.PeakOpen > maxInFlight {
		t.Errorf("the IdP saw %d open connections, want at most %d", c.PeakOpen, maxInFlight)
	}
	if n := ccFailures.Load(); n != 0 {
		t.Errorf("%d of %d client-credentials checks failed during the flood", n, ccChecks.Load())
	}
	if ccRefreshes < 1 {
		t.Error("the client-credentials token was not refreshed during the flood")
	}
	t.Logf("%d flood checks; the IdP refused %d bogus tokens; peaks: %d in flight, %d connections; %d client-credentials refreshes",
		floodChecks.Load(), c.Refused, c.PeakInFlight, c.PeakOpen, ccRefreshes)

	waitFor(t, 5*time.Second, "the flood's token requests to end", func() bool { return idp.Counts().InFlight == 0 })
	if code, err := check("exchange.internal", "user-legit", 5*time.Second); err != nil || code != codes.OK || idp.Counts().Exchanged != 1 {
		t.Fatalf("a new user after the flood: %v %v, %d exchanges", code, err, idp.Counts().Exchanged)
	}
	waitFor(t, 5*time.Second, "goroutines to settle", func() bool { return runtime.NumGoroutine() <= goroutinesBefore+20 })
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
