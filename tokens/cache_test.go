package tokens

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSourceExpiry(t *testing.T) {
	tests := []struct {
		name      string
		ttl       time.Duration // token lifetime sent by the endpoint; 0: none
		advance   time.Duration
		wantFetch int64 // fetches after the second call
	}{
		{"fresh-is-cached", 10 * time.Minute, 9*time.Minute + 29*time.Second, 1},
		{"skew-ends-life-early", 10 * time.Minute, 9*time.Minute + 30*time.Second, 2},
		{"shorter-than-skew-cached-half-its-life", 20 * time.Second, 9 * time.Second, 1},
		{"shorter-than-skew-gone-after-half-its-life", 20 * time.Second, 10 * time.Second, 2},
		{"expired-on-arrival-not-cached", -time.Second, 0, 2},
		{"no-expiry-cached-default-ttl", 0, 59 * time.Second, 1},
		{"no-expiry-gone-after-default-ttl", 0, 60 * time.Second, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fetcher{clk: newClock(), ttl: tt.ttl}
			s := newTestSource(f, Options{RefreshBefore: -1})
			mustToken(t, s, ccRequest())
			f.clk.Add(tt.advance)
			mustToken(t, s, ccRequest())
			if n := f.calls.Load(); n != tt.wantFetch {
				t.Errorf("fetches = %d, want %d", n, tt.wantFetch)
			}
		})
	}
}

func jwtWithExp(exp time.Time) string {
	payload := base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, `{"sub":"alice","exp":%d}`, exp.Unix()))
	return "eyJhbGciOiJub25lIn0." + payload + ".sig"
}

func TestSourceSubjectExpiryCapsEntry(t *testing.T) {
	tests := []struct {
		name      string
		subject   string
		advance   time.Duration
		wantFetch int64
	}{
		{"before-subject-exp", jwtWithExp(testNow.Add(2 * time.Minute)), 119 * time.Second, 1},
		{"at-subject-exp", jwtWithExp(testNow.Add(2 * time.Minute)), 2 * time.Minute, 2},
		{"subject-outlives-token", jwtWithExp(testNow.Add(24 * time.Hour)), 29 * time.Minute, 1},
		{"opaque-subject", "opaque-subject-token", 29 * time.Minute, 1},
		{"garbage-payload", "a.!!!.c", 29 * time.Minute, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fetcher{clk: newClock(), ttl: 30*time.Minute + 30*time.Second}
			s := newTestSource(f, Options{RefreshBefore: -1})
			r := exchangeRequest()
			r.SubjectToken = tt.subject
			mustToken(t, s, r)
			f.clk.Add(tt.advance)
			mustToken(t, s, r)
			if n := f.calls.Load(); n != tt.wantFetch {
				t.Errorf("fetches = %d, want %d", n, tt.wantFetch)
			}
		})
	}
}

func TestSourceRefreshAhead(t *testing.T) {
	f := &fetcher{clk: newClock(), ttl: 10*time.Minute + 30*time.Second} // cached 10m
	s := newTestSource(f, Options{})
	mustToken(t, s, ccRequest())
	f.clk.Add(8*time.Minute + 44*time.Second) // the refresh jitter is at most 15s early
	if got := mustToken(t, s, ccRequest()); got != "token-1" || s.Stats().Refreshes != 0 {
		t.Fatalf("before refresh window: %q, %d refreshes", got, s.Stats().Refreshes)
	}

	f.gate = make(chan struct{})
	f.clk.Add(16 * time.Second) // 60s of cached life left
	for range 50 {
		if got := mustToken(t, s, ccRequest()); got != "token-1" {
			t.Fatalf("while refreshing got %q, want the old token", got)
		}
	}
	close(f.gate)
	waitFor(t, func() bool { return mustToken(t, s, ccRequest()) == "token-2" })
	if n, r := f.calls.Load(), s.Stats().Refreshes; n != 2 || r != 1 {
		t.Errorf("fetches = %d, refreshes = %d, want 2 and 1", n, r)
	}
}

func TestRefreshPointsSpreadOverAQuarterOfRefreshBefore(t *testing.T) {
	s := newTestSource(&fetcher{clk: newClock()}, Options{RefreshBefore: time.Minute})
	now := testNow
	until := now.Add(time.Hour - 30*time.Second) // an hour's token less the 30s skew
	seen := map[int64]bool{}
	for range 100 {
		at := time.Unix(0, s.newEntry(Token{Expiry: now.Add(time.Hour)}, ccRequest(), now).refreshAt.Load())
		if lead := until.Sub(at); lead < time.Minute || lead > time.Minute+15*time.Second {
			t.Fatalf("refresh %v before expiry, want between 60s and 75s", lead)
		}
		seen[at.UnixNano()] = true
	}
	if len(seen) < 50 {
		t.Errorf("100 entries stored together refresh at only %d distinct times", len(seen))
	}
}

func TestSourceRefreshNotBeforeThreeEighthsOfLife(t *testing.T) {
	f := &fetcher{clk: newClock(), ttl: 90 * time.Second} // cached 60s, RefreshBefore 60s
	s := newTestSource(f, Options{})
	mustToken(t, s, ccRequest())
	f.clk.Add(22 * time.Second) // jitter moves half life (30s) at most 7.5s earlier
	mustToken(t, s, ccRequest())
	if r := s.Stats().Refreshes; r != 0 {
		t.Errorf("refreshes before 3/8 of the life = %d", r)
	}
	f.clk.Add(8 * time.Second)
	mustToken(t, s, ccRequest())
	if r := s.Stats().Refreshes; r != 1 {
		t.Errorf("refreshes at half life = %d, want 1 (jitter only moves it earlier)", r)
	}
}

func TestSourceRefreshFailureKeepsToken(t *testing.T) {
	f := &fetcher{clk: newClock(), ttl: 10*time.Minute + 30*time.Second}
	s := newTestSource(f, Options{})
	mustToken(t, s, ccRequest())
	f.setErr(&Error{Class: ErrUnavailable})
	f.clk.Add(9 * time.Minute)
	mustToken(t, s, ccRequest())
	waitFor(t, func() bool { return f.calls.Load() == 2 && !s.lookup(Key(ccRequest())).refreshing.Load() })
	for range 10 { // within the refresh backoff: served, not retried
		if got := mustToken(t, s, ccRequest()); got != "token-1" {
			t.Fatalf("got %q, want the old token", got)
		}
	}
	if n := f.calls.Load(); n != 2 {
		t.Errorf("fetches = %d, want 2", n)
	}
}

func TestSourceBackoff(t *testing.T) {
	tests := []struct {
		name  string
		class error
	}{
		{"unavailable", ErrUnavailable},
		{"client-rejected", ErrClientRejected},
		{"subject-rejected", ErrSubjectRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fetcher{clk: newClock(), ttl: time.Hour}
			f.setErr(&Error{Class: tt.class, Code: "x"})
			s := newTestSource(f, Options{})
			for range 20 {
				if _, err := s.Token(context.Background(), exchangeRequest()); !errors.Is(err, tt.class) {
					t.Fatalf("err = %v, want %v", err, tt.class)
				}
			}
			if n := f.calls.Load(); n != 1 {
				t.Fatalf("fetches while backing off = %d, want 1", n)
			}
			f.clk.Add(backoffBase) // window ended: ask again, fail, wait longer
			s.Token(context.Background(), exchangeRequest())
			f.clk.Add(backoffBase / 2)
			s.Token(context.Background(), exchangeRequest())
			if n := f.calls.Load(); n != 2 {
				t.Fatalf("fetches after second failure = %d, want 2", n)
			}
			f.setErr(nil)
			f.clk.Add(backoffCap)
			if got := mustToken(t, s, exchangeRequest()); got != "token-3" {
				t.Errorf("after the window got %q, want token-3", got)
			}
			if got := mustToken(t, s, exchangeRequest()); got != "token-3" {
				t.Errorf("after recovery got %q, want the cached token-3", got)
			}
		})
	}
}

// TestSourceMaxEntriesUnderConcurrentStores: many cold keys fetched at
// once, their stores released together, must not overshoot MaxEntries
// (each store once saw room for one more; `bench cold` caught 254 of 250).
func TestSourceMaxEntriesUnderConcurrentStores(t *testing.T) {
	const keys, bound = 200, 20
	release := make(chan struct{})
	var waiting sync.WaitGroup
	waiting.Add(keys)
	s := NewSource(Options{MaxEntries: bound, MaxInFlight: keys, RefreshBefore: -1, Fetcher: fetcherFunc(func(ctx context.Context, _ string, r Request) (Token, error) {
		waiting.Done()
		<-release
		return Token{AccessToken: "tok-" + r.Audience, TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}, nil
	})})
	var done sync.WaitGroup
	for i := range keys {
		done.Go(func() {
			r := ccRequest()
			r.Audience = fmt.Sprint("api-", i)
			mustToken(t, s, r)
		})
	}
	waiting.Wait() // every fetch in flight, none stored
	close(release)
	done.Wait()
	if st := s.Stats(); st.Entries > bound {
		t.Fatalf("%d entries after %d concurrent stores, want at most max_entries %d", st.Entries, keys, bound)
	}
}

func TestSourceMaxEntries(t *testing.T) {
	f := &fetcher{clk: newClock(), ttl: time.Hour}
	s := newTestSource(f, Options{MaxEntries: 32, RefreshBefore: -1})
	request := func(i int) Request {
		r := ccRequest()
		r.Audience = fmt.Sprint("api-", i)
		return r
	}
	for i := range 32 {
		mustToken(t, s, request(i))
		f.clk.Add(time.Second) // later entries expire later
	}
	if st := s.Stats(); st.Entries != 32 || st.Evictions != 0 {
		t.Fatalf("full cache: %+v", st)
	}
	mustToken(t, s, request(32))
	if st := s.Stats(); st.Entries != 31 || st.Evictions != 2 {
		t.Errorf("after one more: entries %d evictions %d, want 31 and 2", st.Entries, st.Evictions)
	}
	before := f.calls.Load()
	mustToken(t, s, request(2))  // kept
	mustToken(t, s, request(32)) // kept
	mustToken(t, s, request(0))  // evicted: expires soonest
	if n := f.calls.Load() - before; n != 1 {
		t.Errorf("fetches = %d, want 1 (only the evicted entry)", n)
	}

	f.clk.Add(2 * time.Hour) // all expired: dropped without evicting live ones
	mustToken(t, s, request(100))
	mustToken(t, s, request(101))
	if st := s.Stats(); st.Evictions != 2 || st.Entries != 2 {
		t.Errorf("after expiry: %+v, want 2 entries and no new evictions", st)
	}
}

func TestSourceBackoffHonorsRetryAfter(t *testing.T) {
	tests := []struct {
		name       string
		retryAfter time.Duration
		quiet      time.Duration // still backing off this long after the failure
		retryAt    time.Duration // asks again by then
	}{
		{"longer-than-backoff-plus-jitter", 2 * time.Second, 2*time.Second - time.Millisecond, 2200 * time.Millisecond},
		{"capped", time.Hour, backoffCap - time.Millisecond, backoffCap},
		{"shorter-than-backoff-keeps-backoff", 10 * time.Millisecond, backoffBase/2 - time.Millisecond, backoffBase},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fetcher{clk: newClock(), ttl: time.Hour}
			f.setErr(&Error{Class: ErrUnavailable, Status: 429, RetryAfter: tt.retryAfter})
			s := newTestSource(f, Options{})
			start := f.clk.Now()
			if _, err := s.Token(context.Background(), ccRequest()); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("err = %v", err)
			}
			f.setErr(nil)
			f.clk.Add(tt.quiet)
			if _, err := s.Token(context.Background(), ccRequest()); !errors.Is(err, ErrUnavailable) || f.calls.Load() != 1 {
				t.Fatalf("%v after the failure: err = %v, fetches = %d, want the failure again without a fetch",
					tt.quiet, err, f.calls.Load())
			}
			f.clk.Add(start.Add(tt.retryAt).Sub(f.clk.Now()))
			if got := mustToken(t, s, ccRequest()); got != "token-2" {
				t.Errorf("%v after the failure got %q, want token-2", tt.retryAt, got)
			}
		})
	}
}

func TestSourceRefreshHonorsRetryAfter(t *testing.T) {
	f := &fetcher{clk: newClock(), ttl: 10*time.Minute + 30*time.Second} // cached 10m, refreshed from 9m
	s := newTestSource(f, Options{})
	mustToken(t, s, ccRequest())
	f.setErr(&Error{Class: ErrUnavailable, Status: 503, RetryAfter: 3 * time.Second})
	f.clk.Add(9 * time.Minute)
	mustToken(t, s, ccRequest()) // starts a refresh, which fails
	waitFor(t, func() bool { return f.calls.Load() == 2 && !s.lookup(Key(ccRequest())).refreshing.Load() })
	f.clk.Add(3*time.Second - time.Millisecond)
	if got := mustToken(t, s, ccRequest()); got != "token-1" || s.Stats().Refreshes != 1 {
		t.Fatalf("within Retry-After: %q, %d refreshes, want token-1 and no new refresh", got, s.Stats().Refreshes)
	}
	f.setErr(nil)
	f.clk.Add(400 * time.Millisecond) // past the jitter
	mustToken(t, s, ccRequest())
	waitFor(t, func() bool { return mustToken(t, s, ccRequest()) == "token-3" })
}

// TestSourceBackoffStatesTheWindowApplied: an IdP asking for an hour is not
// told back "retry after 1h" when the backoff applied is capped at seconds.
func TestSourceBackoffStatesTheWindowApplied(t *testing.T) {
	f := &fetcher{clk: newClock(), ttl: time.Hour}
	f.setErr(&Error{Class: ErrUnavailable, Status: 429, RetryAfter: time.Hour})
	s := newTestSource(f, Options{})
	for i := range 2 { // the fetch, then the cached failure
		_, err := s.Token(context.Background(), ccRequest())
		e, ok := errors.AsType[*Error](err)
		if !ok || e.Backoff <= 0 || e.Backoff > backoffCap {
			t.Fatalf("answer %d: err = %v, want a backoff in (0, %v]", i, err, backoffCap)
		}
		if text := err.Error(); !strings.Contains(text, "not asked again for "+e.Backoff.String()) || strings.Contains(text, "1h") {
			t.Errorf("answer %d: text %q, want the window applied (%v) and not the hour asked for", i, text, e.Backoff)
		}
	}
	if f.calls.Load() != 1 {
		t.Errorf("fetches = %d, want 1", f.calls.Load())
	}
}
