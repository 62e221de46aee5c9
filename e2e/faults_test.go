package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"

	"github.com/tokenauthz/tokenauthz/internal/hydra"
)

// The broker asks Hydra through a faultProxy, with a short token request
// timeout and expiry skew so that expiry and timeouts show within seconds.
const (
	faultTimeout = time.Second
	faultConfig  = `
token_request: {timeout: 1s}
cache: {expiry_skew: 1s}
defaults:
  issuer: %s
  client_id: tokenauthz
  client_secret: hydra-secret
services:
  orders:
    hosts: [orders.internal]
    grant_type: client_credentials
    scope: orders.read
`
	// answerBound is how long any check may take: the token request
	// timeout plus a generous margin for a loaded machine.
	answerBound = faultTimeout + time.Second
	hugeBody    = 50 << 20
)

const (
	injectedReason    = "token_injected"
	unavailableReason = "token_endpoint_unavailable"
	rejectedReason    = "client_config_rejected"
)

func TestTokenEndpointFaults(t *testing.T) {
	h := hydra.Start(t)
	h.CreateClient(t, hydra.Client{ID: "tokenauthz", Secret: "hydra-secret", Scopes: []string{"orders.read"}})

	// The fault matrix. Each case makes two checks in a row on a cold cache
	// and counts the token requests that reached the proxy:
	//
	//   fault                          decision        fetches  why
	//   connection refused             503 unavailable  0       nothing listens; the second check is in backoff
	//   reset before/mid response      503 unavailable  1       transport error; backoff answers the second
	//   2 s latency (timeout 1 s)      503 unavailable  1       answered at the 1 s timeout, not 2 s
	//   500, 503, 429 + Retry-After    503 unavailable  1       the IdP is down or busy; retried later
	//   401 invalid_client             500 rejected     1       our client config is wrong, not the IdP
	//   200 garbage / HTML page        503 unavailable  1       an answer we cannot use is an outage
	//   200 {"error":"invalid_client"} 500 rejected     1       some IdPs send errors with 200
	//   200 50 MB body                 503 unavailable  1       read at most 1 MiB (none if declared), then hang up
	//   expires_in -60 / 0             200 injected     2       already expired: used once, not cached
	//   expires_in 1e12                200 injected     1       capped (~68 years) so expiry arithmetic holds
	//   expires_in "3600"              200 injected     1       a numeric string is a valid lifetime
	//   expires_in "abc"               503 unavailable  1       not a lifetime: an unusable answer
	//   expires_in missing             200 injected     1       cached for the default 60 s
	//   access_token missing or ""     503 unavailable  1       nothing to inject
	//   token_type "mac"               503 unavailable  1       we can only send bearer tokens
	//   token_type "bearer"            200 injected     1       token_type is case-insensitive
	tests := []struct {
		name    string
		fault   fault
		reason  string
		status  int
		fetches int
	}{
		{"connection-refused", faultRefuse, unavailableReason, 503, 0},
		{"reset-before-response", faultReset(""), unavailableReason, 503, 1},
		{"reset-mid-response", faultReset("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 900\r\n\r\n{\"access_token\":\"eyJhbGciOi"), unavailableReason, 503, 1},
		{"latency-2s-beyond-1s-timeout", faultDelay(2 * time.Second), unavailableReason, 503, 1},
		{"status-500", faultStatus(500, "", `{"error":"server_error"}`), unavailableReason, 503, 1},
		{"status-503", faultStatus(503, "", ""), unavailableReason, 503, 1},
		{"status-429-retry-after", faultStatus(429, "2", `{"error":"slow_down"}`), unavailableReason, 503, 1},
		{"status-401-invalid-client", faultStatus(401, "", `{"error":"invalid_client"}`), rejectedReason, 500, 1},
		{"200-garbage", faultPage("application/json", "\x00\x17garbage{{\xff"), unavailableReason, 503, 1},
		{"200-html-page", faultPage("text/html", "<!doctype html><html><body><h1>Sign in</h1></body></html>"), unavailableReason, 503, 1},
		{"200-error-object", faultPage("application/json", `{"error":"invalid_client"}`), rejectedReason, 500, 1},
		{"200-50mb-body-with-length", faultHuge(hugeBody, true), unavailableReason, 503, 1},
		{"200-50mb-body-chunked", faultHuge(hugeBody, false), unavailableReason, 503, 1},
		{"expires-in-negative", faultSet("expires_in", -60), injectedReason, 200, 2},
		{"expires-in-zero", faultSet("expires_in", 0), injectedReason, 200, 2},
		{"expires-in-huge", faultSet("expires_in", 1e12), injectedReason, 200, 1},
		{"expires-in-numeric-string", faultSet("expires_in", "3600"), injectedReason, 200, 1},
		{"expires-in-non-numeric-string", faultSet("expires_in", "abc"), unavailableReason, 503, 1},
		{"expires-in-missing", faultDrop("expires_in"), injectedReason, 200, 1},
		{"access-token-missing", faultDrop("access_token"), unavailableReason, 503, 1},
		{"access-token-empty", faultSet("access_token", ""), unavailableReason, 503, 1},
		{"token-type-mac", faultSet("token_type", "mac"), unavailableReason, 503, 1},
		{"token-type-lowercase-bearer", faultSet("token_type", "bearer"), injectedReason, 200, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			noGoroutineLeak(t, func() {
				proxy, broker, stop := startFaultPair(t, h)
				defer stop()
				proxy.set(t, tt.fault)
				for i := range 2 {
					o := mustCheck(t, broker.client)
					if o.reason != tt.reason || o.status != tt.status {
						t.Fatalf("check %d: %s %d, want %s %d (%s)", i+1, o.reason, o.status, tt.reason, tt.status, o.message)
					}
					if o.elapsed >= answerBound {
						t.Errorf("check %d took %v, want < %v", i+1, o.elapsed, answerBound)
					}
					if o.token != "" && !h.Introspect(t, o.token).Active {
						t.Errorf("check %d injected a token Hydra does not know", i+1)
					}
					t.Logf("check %d: %s %d in %v (%s)", i+1, o.reason, o.status, o.elapsed.Round(time.Millisecond), o.message)
				}
				if n := proxy.tokenRequests(); n != tt.fetches {
					t.Errorf("token requests = %d, want %d", n, tt.fetches)
				}
				if strings.HasPrefix(tt.name, "200-50mb") {
					n := proxy.waitBytesWritten(t)
					if n >= hugeBody {
						t.Errorf("the proxy wrote all %d bytes: the broker read the whole body", n)
					}
					t.Logf("proxy wrote %d of %d bytes before the broker hung up", n, hugeBody)
				}
			})
		})
	}

	t.Run("cached-token-served-while-idp-down", func(t *testing.T) {
		noGoroutineLeak(t, func() {
			proxy, broker, stop := startFaultPair(t, h)
			defer stop()
			// Lives 4 s, cached 3 s (1 s skew), refreshed in the background
			// from 1.5 s. Every check until the entry expires must get it,
			// however slowly a loaded machine paces the checks.
			proxy.set(t, faultSet("expires_in", 4))
			fetchStart := time.Now()
			warm := mustCheck(t, broker.client)
			if warm.token == "" {
				t.Fatalf("warm-up: %s %d", warm.reason, warm.status)
			}
			fetchEnd := time.Now()
			proxy.set(t, faultRefuse)
			served := 0
			for {
				o := mustCheck(t, broker.client)
				if o.elapsed >= answerBound {
					t.Errorf("check took %v while the IdP is down", o.elapsed)
				}
				if o.token != "" {
					if o.token != warm.token {
						t.Fatal("a different token while the IdP refuses connections")
					}
					served++
					time.Sleep(50 * time.Millisecond)
					continue
				}
				if o.reason != unavailableReason || o.status != 503 {
					t.Fatalf("after expiry: %s %d, want %s 503", o.reason, o.status, unavailableReason)
				}
				if d := o.start.Sub(fetchStart); d < 3*time.Second {
					t.Errorf("denied %v after the fetch: the cached token was dropped before it expired (3 s)", d)
				}
				if d := o.start.Sub(fetchEnd); d > 4*time.Second {
					t.Errorf("first denial %v after the fetch, want the token dropped at 3 s", d)
				}
				t.Logf("cached token served to %d checks with the IdP down; first denial %v after the fetch",
					served, o.start.Sub(fetchStart).Round(time.Millisecond))
				break
			}

			proxy.set(t, fault{})
			o, took := untilAllowed(t, broker.client, 6*time.Second)
			if o.token == warm.token {
				t.Error("the expired token again after recovery")
			}
			t.Logf("recovered %v after the IdP came back", took.Round(time.Millisecond))
		})
	})

	t.Run("failing-key-not-hammered", func(t *testing.T) {
		noGoroutineLeak(t, func() {
			proxy, broker, stop := startFaultPair(t, h)
			defer stop()
			proxy.set(t, faultStatus(503, "", `{"error":"temporarily_unavailable"}`))
			const callers, period = 200, 2 * time.Second
			var checks, wrong atomic.Int64
			start := time.Now()
			var wg sync.WaitGroup
			for range callers {
				wg.Go(func() {
					for time.Since(start) < period {
						o, err := check(broker.client)
						checks.Add(1)
						if err != nil || o.reason != unavailableReason || o.status != 503 || o.elapsed >= answerBound {
							if wrong.Add(1) == 1 {
								t.Errorf("check: %s %d in %v, err %v; want %s 503", o.reason, o.status, o.elapsed, err, unavailableReason)
							}
						}
						time.Sleep(100 * time.Millisecond)
					}
				})
			}
			wg.Wait()
			n := proxy.tokenRequests()
			if n > 10 || n < 2 {
				t.Errorf("%d token requests for %d checks in %v, want 2..10 (backoff, retried)", n, checks.Load(), period)
			}
			if w := wrong.Load(); w > 0 {
				t.Errorf("%d of %d checks answered otherwise", w, checks.Load())
			}
			t.Logf("%d checks by %d callers in %v made %d token requests", checks.Load(), callers, period, n)
		})
	})

	t.Run("recovery-is-prompt", func(t *testing.T) {
		noGoroutineLeak(t, func() {
			proxy, broker, stop := startFaultPair(t, h)
			defer stop()
			proxy.set(t, faultStatus(503, "", ""))
			for start := time.Now(); time.Since(start) < 3*time.Second; time.Sleep(50 * time.Millisecond) {
				if o := mustCheck(t, broker.client); o.status != 503 {
					t.Fatalf("while the IdP fails: %s %d", o.reason, o.status)
				}
			}
			failed := proxy.tokenRequests()
			proxy.set(t, fault{})
			o, took := untilAllowed(t, broker.client, 8*time.Second)
			if took > 5500*time.Millisecond {
				t.Errorf("first token %v after the IdP came back, want within the 5 s backoff cap", took)
			}
			for range 20 {
				if again := mustCheck(t, broker.client); again.token != o.token {
					t.Fatalf("after recovery: %s %d, want the cached token", again.reason, again.status)
				}
			}
			if n := proxy.tokenRequests(); n != failed+1 {
				t.Errorf("token requests after recovery = %d, want 1 (then cache hits)", n-failed)
			}
			t.Logf("%d failed token requests in 3 s; recovered %v after the IdP came back", failed, took.Round(time.Millisecond))
		})
	})

	t.Run("retry-after-is-honored", func(t *testing.T) {
		noGoroutineLeak(t, func() {
			proxy, broker, stop := startFaultPair(t, h)
			defer stop()
			proxy.set(t, faultStatus(429, "2", `{"error":"slow_down"}`))
			if o := mustCheck(t, broker.client); o.reason != unavailableReason || o.status != 503 {
				t.Fatalf("429: %s %d, want %s 503", o.reason, o.status, unavailableReason)
			}
			proxy.set(t, fault{}) // the IdP is back, but asked for 2 s of quiet
			_, took := untilAllowed(t, broker.client, 6*time.Second)
			hits := proxy.hitTimes()
			if len(hits) != 2 {
				t.Fatalf("%d token requests, want the 429 and one after Retry-After", len(hits))
			}
			if gap := hits[1].Sub(hits[0]); gap < 2*time.Second || gap > 3*time.Second {
				t.Errorf("asked again %v after the 429 with Retry-After: 2, want 2 s to 3 s", gap)
			}
			t.Logf("asked again %v after the 429; allowed %v after the IdP came back", hits[1].Sub(hits[0]).Round(time.Millisecond), took.Round(time.Millisecond))
		})
	})
}

// startFaultPair starts a fault proxy in front of h and a broker that uses
// it as issuer, discovery done. stop stops both, broker first.
func startFaultPair(t *testing.T, h *hydra.Hydra) (*faultProxy, *broker, func()) {
	t.Helper()
	proxy, stopProxy := startFaultProxy(t, h.Issuer())
	broker, stopBroker := startFaultBroker(t, fmt.Sprintf(faultConfig, proxy.url+"/"))
	return proxy, broker, func() {
		stopBroker()
		stopProxy()
	}
}

// outcome is one check's result.
type outcome struct {
	reason  string // token_injected, or the denial's error
	status  int    // HTTP status: 200 when allowed
	token   string // the injected token
	message string // the denial's message
	start   time.Time
	elapsed time.Duration
}

// check asks the broker about a request of the orders service.
func check(c authv3.AuthorizationClient) (outcome, error) {
	o := outcome{start: time.Now()}
	resp, err := c.Check(context.Background(), request("GET", "orders.internal", "/v1/orders", ""))
	o.elapsed = time.Since(o.start)
	if err != nil {
		return o, err
	}
	if codes.Code(resp.GetStatus().GetCode()) == codes.OK {
		h := resp.GetOkResponse().GetHeaders()
		if len(h) != 1 || h[0].GetHeader().GetKey() != "authorization" {
			return o, fmt.Errorf("allowed with headers %v, want one authorization header", h)
		}
		o.reason, o.status = injectedReason, 200
		o.token, _ = strings.CutPrefix(h[0].GetHeader().GetValue(), "Bearer ")
		return o, nil
	}
	var body struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal([]byte(resp.GetDeniedResponse().GetBody()), &body); err != nil {
		return o, fmt.Errorf("denial body %q: %w", resp.GetDeniedResponse().GetBody(), err)
	}
	o.reason, o.status, o.message = body.Error, int(resp.GetDeniedResponse().GetStatus().GetCode()), body.Message
	return o, nil
}

func mustCheck(t *testing.T, c authv3.AuthorizationClient) outcome {
	t.Helper()
	o, err := check(c)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// untilAllowed checks every 50 ms until a token is injected, and returns
// that check and how long it took to get there. Denials meanwhile must be
// 503s answered in time.
func untilAllowed(t *testing.T, c authv3.AuthorizationClient, within time.Duration) (outcome, time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		o := mustCheck(t, c)
		if o.token != "" {
			return o, time.Since(start)
		}
		if o.reason != unavailableReason || o.elapsed >= answerBound {
			t.Fatalf("while recovering: %s %d in %v", o.reason, o.status, o.elapsed)
		}
		if time.Since(start) > within {
			t.Fatalf("no token %v after the IdP came back", within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
