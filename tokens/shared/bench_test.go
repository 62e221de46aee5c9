package shared_test

import (
	"context"
	"testing"
	"time"

	"github.com/tokenauthz/tokenauthz/internal/redistest"
	"github.com/tokenauthz/tokenauthz/tokens"
)

// BenchmarkSourceHit is a first-tier hit with and without the shared tier
// configured: a hit never touches Redis, so the two cost the same.
func BenchmarkSourceHit(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	for _, tt := range []struct {
		name string
		tier func() tokens.Tier
	}{
		{"in-process-only", func() tokens.Tier { return nil }},
		{"with-shared-tier", func() tokens.Tier { return newBenchCache(b, srv.Addr) }},
	} {
		b.Run(tt.name, func(b *testing.B) {
			srv.FlushAll(b)
			f := &fetcher{ttl: time.Hour}
			s := newSource(f, tt.tier())
			ctx := context.Background()
			if _, err := s.Token(ctx, req); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Token(ctx, req); err != nil {
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

// BenchmarkSecondTierHit is a first-tier miss answered from Redis: what a
// replica pays for a key another replica fetched.
func BenchmarkSecondTierHit(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	c := newBenchCache(b, srv.Addr)
	ctx := context.Background()
	c.Put(ctx, "k", tokEntry, time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.Get(ctx, "k"); !ok {
			b.Fatal("miss")
		}
	}
}

func newBenchCache(b *testing.B, addr string) tokens.Tier {
	b.Helper()
	return newCache(b, addr, nil, key(1))
}
