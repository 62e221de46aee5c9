package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

// floodIdP is a slow token endpoint (a fault case, so a fake): every answer
// takes latency; subject tokens starting "user-" are exchanged, others
// refused with invalid_grant, as an IdP refuses forged bearer tokens. It
// counts requests in flight and open connections, and their peaks.
type floodIdP struct {
	srv                     *httptest.Server
	inFlight, peakInFlight  atomic.Int64
	open, peakOpen          atomic.Int64
	cc, exchanged, refusals atomic.Int64
}

func newFloodIdP(t *testing.T, latency, ttl time.Duration) *floodIdP {
	t.Helper()
	p := &floodIdP{}
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raise(&p.peakInFlight, p.inFlight.Add(1))
		defer p.inFlight.Add(-1)
		r.ParseForm()
		time.Sleep(latency)
		w.Header().Set("Content-Type", "application/json")
		switch subject := r.PostForm.Get("subject_token"); {
		case r.PostForm.Get("grant_type") == "client_credentials":
			p.cc.Add(1)
		case strings.HasPrefix(subject, "user-"):
			p.exchanged.Add(1)
		default:
			p.refusals.Add(1)
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"invalid_grant"}`)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("tok-%d", time.Now().UnixNano()),
			"token_type": "Bearer", "expires_in": int(ttl / time.Second)})
	}))
	p.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			raise(&p.peakOpen, p.open.Add(1))
		case http.StateClosed, http.StateHijacked:
			p.open.Add(-1)
		}
	}
	p.srv.Start()
	t.Cleanup(p.srv.Close)
	return p
}

func raise(peak *atomic.Int64, v int64) {
	for cur := peak.Load(); v > cur && !peak.CompareAndSwap(cur, v); cur = peak.Load() {
	}
}

// TestFloodOfBogusSubjectTokens: each distinct bearer token on a
// token-exchange route is its own cache key, so an unauthenticated client
// could drive the IdP one token request (and one connection) per request.
// With max_in_flight 8 the IdP never sees more than 8 at once, checks that
// cannot start are answered at their deadline, the cached client-credentials
// token keeps being served and is refreshed during the flood, and a new
// user gets an exchange once it ends.
func TestFloodOfBogusSubjectTokens(t *testing.T) {
	const maxInFlight, attackers, deadline = 8, 300, 250 * time.Millisecond
	idp := newFloodIdP(t, 300*time.Millisecond, 4*time.Second)
	b := startBroker(t, fmt.Sprintf(`
token_request: {timeout: 2s, max_in_flight: %d}
cache: {expiry_skew: 1s, refresh_before: 2s}
defaults: {token_url: %s/token, client_id: c, client_secret: s}
services:
  cc: {hosts: [cc.internal], grant_type: client_credentials}
  exchange: {hosts: [exchange.internal], grant_type: token_exchange}
`, maxInFlight, idp.srv.URL))
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
	ccBefore := idp.cc.Load()
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
	ccRefreshes := idp.cc.Load() - ccBefore

	if p := idp.peakInFlight.Load(); p > maxInFlight {
		t.Errorf("the IdP saw %d token requests at once, want at most %d", p, maxInFlight)
	}
	if p := idp.peakOpen.Load(); p > maxInFlight {
		t.Errorf("the IdP saw %d open connections, want at most %d", p, maxInFlight)
	}
	if n := ccFailures.Load(); n != 0 {
		t.Errorf("%d of %d client-credentials checks failed during the flood", n, ccChecks.Load())
	}
	if ccRefreshes < 1 {
		t.Error("the client-credentials token was not refreshed during the flood")
	}
	t.Logf("%d flood checks; the IdP refused %d bogus tokens; peaks: %d in flight, %d connections; %d client-credentials refreshes",
		floodChecks.Load(), idp.refusals.Load(), idp.peakInFlight.Load(), idp.peakOpen.Load(), ccRefreshes)

	waitFor(t, 5*time.Second, "the flood's token requests to end", func() bool { return idp.inFlight.Load() == 0 })
	if code, err := check("exchange.internal", "user-legit", 5*time.Second); err != nil || code != codes.OK || idp.exchanged.Load() != 1 {
		t.Fatalf("a new user after the flood: %v %v, %d exchanges", code, err, idp.exchanged.Load())
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
