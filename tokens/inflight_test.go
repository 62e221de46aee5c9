package tokens

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gatedFetcher holds every fetch until open is closed, counting fetches
// under way and their peak.
type gatedFetcher struct {
	open             chan struct{}
	inFlight, peak   atomic.Int64
	started, exchges atomic.Int64
}

func (g *gatedFetcher) Fetch(ctx context.Context, _ string, r Request) (Token, error) {
	g.started.Add(1)
	if r.GrantType == GrantTokenExchange {
		g.exchges.Add(1)
	}
	n := g.inFlight.Add(1)
	defer g.inFlight.Add(-1)
	for {
		p := g.peak.Load()
		if n <= p || g.peak.CompareAndSwap(p, n) {
			break
		}
	}
	select {
	case <-g.open:
	case <-ctx.Done():
		return Token{}, &Error{Class: ErrUnavailable, Description: "timeout"}
	}
	return Token{AccessToken: "t-" + r.SubjectToken, TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}, nil
}

func flood(s *Source, n int, deadline time.Duration) (busy *atomic.Int64, wait func()) {
	busy = &atomic.Int64{}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			r := exchangeRequest()
			r.SubjectToken = fmt.Sprintf("bogus-%d", i)
			// The caller sees its own deadline, or the refused slot when
			// that comes first: both are ErrUnavailable (503).
			if _, err := s.Token(ctx, r); errors.Is(err, ErrUnavailable) {
				busy.Add(1)
			}
		})
	}
	return busy, wg.Wait
}

func TestInFlightBoundsAFloodOfExchangeMisses(t *testing.T) {
	g := &gatedFetcher{open: make(chan struct{})}
	s := NewSource(Options{Fetcher: g, MaxInFlight: 8}) // 6 for exchange misses, 2 kept back
	busy, wait := flood(s, 50, 300*time.Millisecond)
	waitFor(t, func() bool { return g.inFlight.Load() == 6 })

	// Client credentials still start while the flood holds every slot it may.
	ccDone := make(chan error, 1)
	go func() { _, err := s.Token(context.Background(), ccRequest()); ccDone <- err }()
	waitFor(t, func() bool { return g.inFlight.Load() == 7 })

	start := time.Now()
	wait() // the flood's checks that never started give up at their deadline
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the flood's checks took %v to be answered, want about their 300ms deadline", took)
	}
	if got := busy.Load(); got != 50 {
		t.Errorf("%d checks answered unavailable at their deadline, want all 50", got)
	}
	if got := g.exchges.Load(); got != 6 {
		t.Errorf("%d exchanges reached the endpoint, want 6", got)
	}
	if p := g.peak.Load(); p != 7 {
		t.Errorf("peak fetches in flight %d, want 7 (6 exchanges and the client-credentials fetch)", p)
	}
	close(g.open)
	if err := <-ccDone; err != nil {
		t.Fatalf("client credentials during the flood: %v", err)
	}
	// A check that could not start was not remembered as a failure: the
	// same subject now fetches at once.
	r := exchangeRequest()
	r.SubjectToken = "bogus-49"
	if _, err := s.Token(context.Background(), r); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("after the flood: %v", err)
	}
}

func TestInFlightRefreshesDuringAFlood(t *testing.T) {
	clk := newClock()
	g := &gatedFetcher{open: make(chan struct{})}
	f := &fetcher{clk: clk, ttl: 10 * time.Minute}
	var routed atomic.Bool // once set, fetches go to the gated fetcher
	s := NewSource(Options{Now: clk.Now, MaxInFlight: 4, Fetcher: fetcherFunc(func(ctx context.Context, u string, r Request) (Token, error) {
		if routed.Load() && r.GrantType == GrantTokenExchange {
			return g.Fetch(ctx, u, r)
		}
		return f.Fetch(ctx, u, r)
	})})
	mustToken(t, s, ccRequest())
	routed.Store(true)
	_, wait := flood(s, 20, 500*time.Millisecond)
	defer func() { close(g.open); wait() }()
	waitFor(t, func() bool { return g.inFlight.Load() == 3 }) // every exchange slot taken
	clk.Add(9*time.Minute + 30*time.Second)                   // the cached token is due for refresh
	mustToken(t, s, ccRequest())                              // served, and starts the refresh
	waitFor(t, func() bool { return f.calls.Load() == 2 })
	waitFor(t, func() bool { return mustToken(t, s, ccRequest()) == "token-2" })
}

func TestInFlightWaitIsBoundedByTheDeadline(t *testing.T) {
	g := &gatedFetcher{open: make(chan struct{})}
	s := NewSource(Options{Fetcher: g, MaxInFlight: 1})
	go s.Token(context.Background(), ccRequest()) // holds the only slot
	waitFor(t, func() bool { return g.inFlight.Load() == 1 })
	other := ccRequest()
	other.Scope = []string{"other"}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Token(ctx, other)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("answered after %v, want about the 100ms deadline", took)
	}
	time.Sleep(50 * time.Millisecond) // the load that waited for the slot ends with its caller's deadline
	close(g.open)
	waitFor(t, func() bool { return g.inFlight.Load() == 0 })
	if _, err := s.Token(context.Background(), other); err != nil {
		t.Fatalf("once a slot is free: %v (the wait must not be remembered as a failure)", err)
	}
	if got := g.started.Load(); got != 2 {
		t.Errorf("fetches started %d, want 2", got)
	}
}
