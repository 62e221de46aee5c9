package tokens

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestTokenIDs(t *testing.T) {
	f := &fetcher{clk: newClock(), ttl: time.Hour}
	s := newTestSource(f, Options{IDKey: []byte("fleet-key")})
	tok, err := s.Token(context.Background(), ccRequest())
	if err != nil {
		t.Fatal(err)
	}
	other := ccRequest()
	other.Scope = []string{"other"}
	otherTok, _ := s.Token(context.Background(), other)
	twin := newTestSource(&fetcher{clk: newClock(), ttl: time.Hour}, Options{IDKey: []byte("fleet-key")})
	twinTok, _ := twin.Token(context.Background(), ccRequest())
	stranger := newTestSource(&fetcher{clk: newClock(), ttl: time.Hour}, Options{})
	strangerTok, _ := stranger.Token(context.Background(), ccRequest())
	switch {
	case len(tok.ID) != 16:
		t.Errorf("id %q, want 16 characters", tok.ID)
	case tok.ID == otherTok.ID:
		t.Errorf("two keys share id %q", tok.ID)
	case tok.ID != twinTok.ID:
		t.Errorf("the same key under the same id key: %q and %q", tok.ID, twinTok.ID)
	case tok.ID == strangerTok.ID:
		t.Errorf("another id key gave the same id %q", tok.ID)
	case strings.Contains(tok.ID, tok.AccessToken):
		t.Errorf("id %q holds the token", tok.ID)
	}
}

func TestCacheOutcomeAndMemo(t *testing.T) {
	f := &fetcher{clk: newClock(), ttl: 10*time.Minute + 30*time.Second} // cached 10m, refreshed from 9m
	s := newTestSource(f, Options{})
	get := func() Token {
		t.Helper()
		tok, err := s.Token(context.Background(), ccRequest())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	miss := get()
	hit := get()
	if miss.Cache != CacheMiss || hit.Cache != CacheHit {
		t.Fatalf("outcomes %q, %q; want miss, hit", miss.Cache, hit.Cache)
	}
	if miss.Memo() == nil || miss.Memo() != hit.Memo() {
		t.Fatal("the miss and the hit of one entry do not share its memo")
	}
	hit.Memo().Store("rendered")
	f.clk.Add(9*time.Minute + 30*time.Second)
	if got := get(); got.Cache != CacheRefresh || got.Memo().Load() != "rendered" {
		t.Fatalf("at the refresh point: %q, memo %v; want refresh, the old entry's memo", got.Cache, got.Memo().Load())
	}
	waitFor(t, func() bool { return get().AccessToken == "token-2" })
	if fresh := get(); fresh.Memo().Load() != nil || fresh.ID != hit.ID {
		t.Errorf("the refreshed entry: memo %v, id %q; want an empty memo and the same id %q", fresh.Memo().Load(), fresh.ID, hit.ID)
	}
}

func TestPurge(t *testing.T) {
	f := &fetcher{clk: newClock(), ttl: time.Hour}
	s := newTestSource(f, Options{PurgeInterval: 10 * time.Second})
	id := func() string { t.Helper(); tok, _ := s.Token(context.Background(), ccRequest()); return tok.ID }
	first := id()
	if s.Purge("unknown-id") {
		t.Error("an unknown id was purged")
	}
	if !s.Purge(first) {
		t.Fatal("a cached token's id was not purged")
	}
	if got := mustToken(t, s, ccRequest()); got != "token-2" {
		t.Fatalf("after the purge: %q, want a new token", got)
	}
	for range 1000 {
		if s.Purge(first) {
			t.Fatal("purged twice within the purge interval")
		}
	}
	if got := mustToken(t, s, ccRequest()); got != "token-2" || f.calls.Load() != 2 {
		t.Fatalf("%q after %d fetches, want token-2 after 2", got, f.calls.Load())
	}
	f.clk.Add(10 * time.Second)
	if !s.Purge(first) || mustToken(t, s, ccRequest()) != "token-3" {
		t.Error("a purge after the interval did not fetch anew")
	}
}

func TestPurgeForgetsEvictedEntries(t *testing.T) {
	f := &fetcher{clk: newClock(), ttl: time.Hour}
	s := newTestSource(f, Options{})
	tok, _ := s.Token(context.Background(), ccRequest())
	s.cache.Delete(Key(ccRequest()))
	if _, ok := s.ids.Load(tok.ID); ok {
		t.Error("the id of a deleted entry is still known")
	}
	tok, _ = s.Token(context.Background(), ccRequest())
	if _, ok := s.ids.Load(tok.ID); !ok {
		t.Error("the id of a new entry is not known")
	}
}
