package shared_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenauthz/tokenauthz/internal/redistest"
	"github.com/tokenauthz/tokenauthz/tokens"
	"github.com/tokenauthz/tokenauthz/tokens/shared"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, shared.KeySize) }

// counts is an Observer that counts operations by op/outcome.
type counts struct {
	mu sync.Mutex
	m  map[string]int
	up atomic.Bool
}

func (c *counts) ObserveSharedOp(op, outcome string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]int{}
	}
	c.m[op+"/"+outcome]++
}

func (c *counts) ObserveSharedUp(up bool) { c.up.Store(up) }

func (c *counts) get(s string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[s]
}

func newCache(t testing.TB, addr string, obs shared.Observer, keys ...[]byte) *shared.Cache {
	t.Helper()
	c, err := shared.New(shared.Options{Addresses: []string{addr}, Prefix: "test:", Keys: keys, Observer: obs,
		Timeout: 200 * time.Millisecond, BreakerOpen: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var now = time.Now().Truncate(time.Millisecond)

var tokEntry = tokens.SharedEntry{
	Token: tokens.NewToken("access-1", "Bearer", "orders.read", now.Add(time.Hour)),
	Until: now.Add(59 * time.Minute), RefreshAt: now.Add(58 * time.Minute),
}

func TestGetPutAndRotation(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := context.Background()
	var obs counts
	old := newCache(t, srv.Addr, &obs, key(1))
	old.Put(ctx, "cache-key", tokEntry, time.Minute)

	tests := []struct {
		name  string
		keys  [][]byte
		found bool
	}{
		{"same-key", [][]byte{key(1)}, true},
		{"rotated-old-key-second", [][]byte{key(2), key(1)}, true},
		{"old-key-dropped", [][]byte{key(2)}, false},
		{"other-keys-file", [][]byte{key(3), key(4)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCache(t, srv.Addr, nil, tt.keys...)
			e, ok := c.Get(ctx, "cache-key")
			if ok != tt.found {
				t.Fatalf("found = %v, want %v", ok, tt.found)
			}
			if ok && (e.Token.AccessToken != "access-1" || !e.Until.Equal(tokEntry.Until) || !e.RefreshAt.Equal(tokEntry.RefreshAt)) {
				t.Errorf("entry = %+v", e)
			}
		})
	}
	if _, ok := old.Get(ctx, "other-cache-key"); ok {
		t.Error("found an entry never stored")
	}

	// SetKeys (a reload): new entries are sealed under the new first key,
	// old ones stay readable while the old key is listed.
	if err := old.SetKeys([][]byte{key(2), key(1)}); err != nil {
		t.Fatal(err)
	}
	old.Put(ctx, "new-key", tokEntry, time.Minute)
	if _, ok := newCache(t, srv.Addr, nil, key(2)).Get(ctx, "new-key"); !ok {
		t.Error("entry put after rotation not readable with the new key alone")
	}
	if _, ok := old.Get(ctx, "cache-key"); !ok {
		t.Error("entry sealed before rotation not readable after it")
	}
	if err := old.SetKeys([][]byte{key(2)[:16]}); err == nil {
		t.Error("SetKeys accepted a 16-byte key")
	}
	if got := obs.get("get/hit"); got < 1 {
		t.Errorf("get/hit counted %d", got)
	}
}

func TestCorruptedAndForeignEntriesAreMisses(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := context.Background()
	var obs counts
	c := newCache(t, srv.Addr, &obs, key(1))
	c.Put(ctx, "a", tokEntry, time.Minute)
	c.Put(ctx, "b", tokEntry, time.Minute)
	rc := srv.Client()
	defer rc.Close()
	keys, err := rc.Keys(ctx, "test:*").Result()
	if err != nil || len(keys) != 2 {
		t.Fatalf("keys %v, %v", keys, err)
	}
	va, _ := rc.Get(ctx, keys[0]).Bytes()
	vb, _ := rc.Get(ctx, keys[1]).Bytes()
	// Swap the two values: each is now under the other's key.
	rc.Set(ctx, keys[0], vb, time.Minute)
	rc.Set(ctx, keys[1], va, time.Minute)
	for _, k := range []string{"a", "b"} {
		if _, ok := c.Get(ctx, k); ok {
			t.Errorf("%s: an entry moved from another key was served", k)
		}
	}
	for name, v := range map[string][]byte{"truncated": va[:len(va)/2], "garbage": []byte("not an entry"), "empty": {}} {
		rc.Set(ctx, keys[0], v, time.Minute)
		if _, ok := c.Get(ctx, "a"); ok {
			t.Errorf("%s entry was served", name)
		}
	}
	if got := obs.get("get/invalid"); got != 5 {
		t.Errorf("get/invalid = %d, want 5", got)
	}
	for _, v := range []string{"access-1", "orders.read", "Bearer"} {
		if bytes.Contains(vb, []byte(v)) || strings.Contains(keys[0]+keys[1], v) {
			t.Errorf("redis holds %q in clear", v)
		}
	}
}

// fetcher counts token requests; each returns a new token living ttl.
type fetcher struct {
	calls atomic.Int64
	delay time.Duration
	ttl   time.Duration
}

func (f *fetcher) Fetch(ctx context.Context, _ string, r tokens.Request) (tokens.Token, error) {
	n := f.calls.Add(1)
	select {
	case <-time.After(f.delay):
	case <-ctx.Done():
		return tokens.Token{}, ctx.Err()
	}
	return tokens.NewToken(fmt.Sprintf("token-%d-for-%s", n, r.ClientID), "Bearer", "", time.Now().Add(f.ttl)), nil
}

func newSource(f tokens.Fetcher, tier tokens.Tier) *tokens.Source {
	return tokens.NewSource(tokens.Options{Fetcher: f, Shared: tier, Timeout: 200 * time.Millisecond})
}

var req = tokens.Request{TokenURL: "http://idp.invalid/token", ClientID: "svc", Auth: tokens.Basic("s3cret", "test"), GrantType: tokens.GrantClientCredentials}

func TestTwoSourcesOneFetch(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	f := &fetcher{delay: 50 * time.Millisecond, ttl: time.Hour}
	a := newSource(f, newCache(t, srv.Addr, nil, key(1)))
	b := newSource(f, newCache(t, srv.Addr, nil, key(1)))
	var wg sync.WaitGroup
	got := make([]string, 100)
	errs := make([]error, 100)
	for i := range 100 {
		src := a
		if i%2 == 1 {
			src = b
		}
		wg.Go(func() {
			tok, err := src.Token(context.Background(), req)
			got[i], errs[i] = tok.AccessToken, err
		})
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil || got[i] != got[0] {
			t.Fatalf("check %d: %q, %v; check 0: %q", i, got[i], errs[i], got[0])
		}
	}
	if n := f.calls.Load(); n != 1 {
		t.Errorf("%d token requests for 100 concurrent checks on two Sources, want 1", n)
	}
}

func TestLockOwnershipAndLease(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := context.Background()
	a := newCache(t, srv.Addr, nil, key(1))
	b := newCache(t, srv.Addr, nil, key(1))
	releaseA := a.Lock(ctx, "k", 150*time.Millisecond)
	if releaseA == nil {
		t.Fatal("first lock not taken")
	}
	if b.Lock(ctx, "k", time.Second) != nil {
		t.Fatal("second lock taken while the first is held")
	}
	time.Sleep(250 * time.Millisecond) // a's lease runs out
	releaseB := b.Lock(ctx, "k", time.Second)
	if releaseB == nil {
		t.Fatal("lock not taken after the holder's lease ran out")
	}
	woken, stop := b.Wait("k")
	defer stop()
	releaseA() // no longer a's: must not free b's lock, but wakes waiters
	if a.Lock(ctx, "k", time.Second) != nil {
		t.Fatal("a's late release freed b's lock")
	}
	select {
	case <-woken:
	case <-time.After(2 * time.Second):
		t.Fatal("release notice not received")
	}
	releaseB()
	if r := a.Lock(ctx, "k", time.Second); r == nil {
		t.Fatal("lock not free after its owner released it")
	}
}

func TestHolderDiesAnotherTakesOver(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	f := &fetcher{ttl: time.Hour}
	dead := newCache(t, srv.Addr, nil, key(1))
	// A replica takes the key's lock, then dies without releasing it.
	if dead.Lock(context.Background(), string(tokens.Key(req)), 400*time.Millisecond) == nil {
		t.Fatal("lock not taken")
	}
	src := newSource(f, newCache(t, srv.Addr, nil, key(1)))
	start := time.Now()
	tok, err := src.Token(context.Background(), req)
	if err != nil || tok.AccessToken == "" {
		t.Fatalf("Token: %q, %v", tok.AccessToken, err)
	}
	if waited := time.Since(start); waited < 300*time.Millisecond || waited > 2*time.Second {
		t.Errorf("waited %v for a dead holder's 400ms lease", waited)
	}
	if n := f.calls.Load(); n != 1 {
		t.Errorf("%d token requests, want 1", n)
	}
}

func TestRedisDownThenBack(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	var obs counts
	c := newCache(t, srv.Addr, &obs, key(1))
	f := &fetcher{ttl: time.Hour}
	src := newSource(f, c)
	srv.Kill()
	for i := range 10 {
		r := req
		r.ClientID = fmt.Sprintf("svc-%d", i)
		start := time.Now()
		if _, err := src.Token(context.Background(), r); err != nil {
			t.Fatalf("Token with Redis down: %v", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("check %d took %v with Redis down", i, d)
		}
	}
	if c.Up() || obs.up.Load() {
		t.Error("up with Redis down")
	}
	if obs.get("get/skipped") == 0 {
		t.Error("the breaker never skipped Redis")
	}
	srv.Restart(t)
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; !c.Up(); i++ {
		if time.Now().After(deadline) {
			t.Fatal("breaker did not close within 5s of Redis coming back")
		}
		c.Get(context.Background(), fmt.Sprint("probe-", i))
		time.Sleep(50 * time.Millisecond)
	}
	if !obs.up.Load() {
		t.Error("observer not told Redis is up again")
	}
	other := newSource(f, newCache(t, srv.Addr, nil, key(1)))
	before := f.calls.Load()
	if _, err := src.Token(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Token(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if n := f.calls.Load() - before; n != 1 {
		t.Errorf("after Redis came back: %d token requests for two Sources, want 1 (shared again)", n)
	}
}

// A purge (a backend refused the token) drops the fleet's entry too:
// otherwise the next miss anywhere would adopt the refused token again.
func TestPurgeDropsTheSharedEntry(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	f := &fetcher{ttl: time.Hour}
	a := newSource(f, newCache(t, srv.Addr, nil, key(1)))
	first, err := a.Token(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Purge(first.ID) {
		t.Fatal("not purged")
	}
	b := newSource(f, newCache(t, srv.Addr, nil, key(1))) // a replica that never saw the token
	second, err := b.Token(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if second.AccessToken == first.AccessToken || f.calls.Load() != 2 {
		t.Errorf("after the purge: %q after %d token requests, want a new token from a second request", second.AccessToken, f.calls.Load())
	}
}
