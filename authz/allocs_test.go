//go:build !race

package authz_test

import (
	"testing"

	"github.com/tokenauthz/tokenauthz/authz"
	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/internal/metrics"
	"github.com/tokenauthz/tokenauthz/tokens"
)

// maxHitAllocs is what a cache hit may allocate, from the request's wire
// bytes to the response's: the request's bytes, the decoded fields, the
// cache key.
const maxHitAllocs = 3

// TestHitAllocations counts the allocations of a hit as the gRPC service
// runs it, with every feature on (featuresConfig, metrics, cache.shared).
// The race detector changes allocation, so scripts/test.sh runs this
// without it.
func TestHitAllocations(t *testing.T) {
	cfg, err := config.Parse("features.yaml", []byte(featuresConfig))
	if err != nil {
		t.Fatal(err)
	}
	tok := fetchedToken(t, jwtLike(690))
	src := tokens.NewSource(tokens.Options{Fetcher: fixedFetcher{tok}, RefreshBefore: -1, Shared: sharedTier(t)})
	srv := authz.New(cfg, src, authz.Options{Observer: metrics.New(src.Stats)})
	for _, r := range []struct{ name, path, endpoint string }{
		{"client-credentials", "/v1/orders/1", ""},
		{"token-exchange", "/v1/orders/history", "history"},
	} {
		t.Run(r.name, func(t *testing.T) {
			check := checkBy(t, "wire", srv, withFeatures(benchRequest(r.path, jwtLike(650)), r.endpoint))
			check() // the miss
			if n := testing.AllocsPerRun(200, check); n > maxHitAllocs {
				t.Fatalf("a hit allocates %.1f times, want at most %d", n, maxHitAllocs)
			}
		})
	}
}
