package tokens

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: testNow} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fetcher is a fake token endpoint: each call gets the next token, living
// ttl by clk, or err. If gate is set, calls wait for it to be closed.
type fetcher struct {
	clk   *clock
	ttl   time.Duration // 0: no expiry sent
	gate  chan struct{}
	calls atomic.Int64

	mu  sync.Mutex
	err error
}

func (f *fetcher) Fetch(ctx context.Context, tokenURL string, r Request) (Token, error) {
	n := f.calls.Add(1)
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return Token{}, &Error{Class: ErrUnavailable, Description: "timeout"}
		}
	}
	f.mu.Lock()
	err := f.err
	f.mu.Unlock()
	if err != nil {
		return Token{}, err
	}
	tok := Token{AccessToken: fmt.Sprintf("token-%d", n), TokenType: "Bearer"}
	if f.ttl != 0 {
		tok.Expiry = f.clk.Now().Add(f.ttl)
	}
	return tok, nil
}

func (f *fetcher) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func newTestSource(f *fetcher, opts Options) *Source {
	opts.Fetcher, opts.Now = f, f.clk.Now
	return NewSource(opts)
}

func mustToken(t *testing.T, s *Source, r Request) string {
	t.Helper()
	tok, err := s.Token(context.Background(), r)
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	return tok.AccessToken
}

func TestSourceOneFetchForConcurrentMisses(t *testing.T) {
	f := &fetcher{clk: newClock(), ttl: time.Hour, gate: make(chan struct{})}
	s := newTestSource(f, Options{})
	var wg sync.WaitGroup
	got := make([]string, 100)
	for i := range got {
		wg.Go(func() { got[i] = mustToken(t, s, ccRequest()) })
	}
	for s.Stats().Misses < 100 { // let every goroutine reach the cache first
		time.Sleep(time.Millisecond)
	}
	close(f.gate)
	wg.Wait()
	if n := f.calls.Load(); n != 1 {
		t.Errorf("fetches = %d, want 1", n)
	}
	for i, tok := range got {
		if tok != "token-1" {
			t.Fatalf("caller %d got %q", i, tok)
		}
	}
}

func TestSourceCallerGivingUpDoesNotCancelFetch(t *testing.T) {
	f := &fetcher{clk: newClock(), ttl: time.Hour, gate: make(chan struct{})}
	s := newTestSource(f, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := s.Token(ctx, ccRequest())
		done <- err
	}()
	for f.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled caller err = %v, want context.Canceled", err)
	}
	close(f.gate)
	if got := mustToken(t, s, ccRequest()); got != "token-1" || f.calls.Load() != 1 {
		t.Errorf("after cancel got %q with %d fetches, want the first fetch's token", got, f.calls.Load())
	}
}

func TestSourceStatsAndObserver(t *testing.T) {
	f := &fetcher{clk: newClock(), ttl: time.Hour}
	obs := &observer{}
	s := newTestSource(f, Options{Observer: obs})
	mustToken(t, s, ccRequest())
	mustToken(t, s, ccRequest())
	st := s.Stats()
	if st.Hits != 1 || st.Misses != 1 || st.Fetches != 1 || st.Entries != 1 {
		t.Errorf("Stats = %+v", st)
	}
	if obs.outcomes() != "sent:ok" {
		t.Errorf("observed %q, want sent:ok", obs.outcomes())
	}
}

// TestSourceObservesOnlySentRequestsAsFetches: a request that never left
// (no endpoint known, no in-flight slot) is no fetch for the Observer or
// Stats; it is observed as not sent, with why.
func TestSourceObservesOnlySentRequestsAsFetches(t *testing.T) {
	down := &Discovery{HTTP: &http.Client{Timeout: time.Second}}
	tests := []struct {
		name     string
		opts     Options
		request  func() Request
		fetchErr error // the endpoint's answer, when sent
		hold     bool  // a first fetch holds the only in-flight slot meanwhile
		want     string
		fetches  uint64
	}{
		{"sent", Options{}, ccRequest, nil, false, "sent:ok", 1},
		{"endpoint-rejects-client", Options{}, ccRequest, &Error{Class: ErrClientRejected, Code: "invalid_client"}, false, "sent:client_rejected", 1},
		{"no-token-url-no-discovery", Options{}, func() Request { r := ccRequest(); r.TokenURL = ""; return r }, nil, false, "not_sent:no_endpoint", 0},
		{"discovery-fails", Options{Discovery: down}, func() Request { r := ccRequest(); r.TokenURL, r.Issuer = "", "http://127.0.0.1:1/"; return r }, nil, false, "not_sent:no_endpoint", 0},
		{"no-in-flight-slot", Options{MaxInFlight: 1}, ccRequest, nil, true, "not_sent:max_in_flight", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fetcher{clk: newClock(), ttl: time.Hour, err: tt.fetchErr}
			obs := &observer{}
			tt.opts.Observer = obs
			s := newTestSource(f, tt.opts)
			if tt.hold {
				f.gate = make(chan struct{})
				other := ccRequest()
				other.ClientID = "holder"
				go s.Token(context.Background(), other)
				waitFor(t, func() bool { return f.calls.Load() == 1 })
				defer close(f.gate)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if tt.hold {
				ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond) // the slot wait ends here
			}
			defer cancel()
			s.Token(ctx, tt.request())
			waitFor(t, func() bool { return obs.outcomes() != "" }) // the caller may give up before the slot does
			if got := obs.outcomes(); got != tt.want {
				t.Errorf("observed %q, want %q", got, tt.want)
			}
			if got := s.Stats().Fetches; got != tt.fetches {
				t.Errorf("Stats().Fetches = %d, want %d", got, tt.fetches)
			}
		})
	}
}

func TestSourceWithoutTokenURL(t *testing.T) {
	f := &fetcher{clk: newClock(), ttl: time.Hour}
	s := newTestSource(f, Options{})
	r := ccRequest()
	r.TokenURL = ""
	if _, err := s.Token(context.Background(), r); !errors.Is(err, ErrClientRejected) {
		t.Errorf("err = %v, want ErrClientRejected", err)
	}
}

type observer struct {
	mu  sync.Mutex
	got []string
}

func (o *observer) ObserveFetch(r Request, outcome string, d time.Duration) {
	o.add("sent:" + outcome)
}

func (o *observer) ObserveNotSent(r Request, reason string) { o.add("not_sent:" + reason) }

func (o *observer) add(s string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, s)
}

// outcomes are the observations so far, comma-separated.
func (o *observer) outcomes() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.Join(o.got, ",")
}

// waitFor polls cond, for results of background goroutines (not for expiry,
// which the fake clock drives).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

func BenchmarkSourceHit(b *testing.B) {
	tests := []struct {
		name string
		req  Request
	}{
		{"client-credentials", ccRequest()},
		{"exchange-1k-subject", func() Request { r := exchangeRequest(); r.SubjectToken = string(make([]byte, 1024)); return r }()},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			f := &fetcher{clk: newClock(), ttl: time.Hour}
			s := newTestSource(f, Options{})
			ctx := context.Background()
			if _, err := s.Token(ctx, tt.req); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Token(ctx, tt.req); err != nil {
						b.Fatal(err)
					}
				}
			})
			if f.calls.Load() != 1 {
				b.Fatalf("fetches = %d", f.calls.Load())
			}
		})
	}
}

func TestSourceWithClient(t *testing.T) {
	ep, srv := newEndpoint(t, 200, `{"access_token":"at","token_type":"Bearer","expires_in":"120"}`)
	var requests atomic.Int64
	clk := newClock()
	s := NewSource(Options{Now: clk.Now, Fetcher: fetcherFunc(func(ctx context.Context, u string, r Request) (Token, error) {
		requests.Add(1)
		return (&Client{Now: clk.Now}).Fetch(ctx, u, r)
	})})
	r := ccRequest()
	r.TokenURL = srv.URL
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() { mustToken(t, s, r) })
	}
	wg.Wait()
	if n := requests.Load(); n != 1 {
		t.Errorf("requests = %d, want 1", n)
	}
	if form, _ := ep.last(); form.Get("grant_type") != GrantClientCredentials {
		t.Errorf("form = %v", form)
	}
	clk.Add(90 * time.Second) // 120s - 30s skew
	mustToken(t, s, r)
	if n := requests.Load(); n != 2 {
		t.Errorf("requests after expiry = %d, want 2", n)
	}
}
