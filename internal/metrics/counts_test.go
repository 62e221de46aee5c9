package metrics

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthz/tokenauthz/authz"
	"github.com/tokenauthz/tokenauthz/tokens"
)

func TestCheckCountsAndDenials(t *testing.T) {
	m := New(func() tokens.CacheStats { return tokens.CacheStats{} })
	var denied []string
	m.OnDenial(func(d authz.Decision) { denied = append(denied, d.RequestID) })
	for _, d := range []authz.Decision{
		{Reason: authz.ReasonTokenInjected, Service: "orders", Cache: tokens.CacheMiss, RequestID: "o-1"},
		{Reason: authz.ReasonTokenInjected, Service: "orders", Cache: tokens.CacheHit, RequestID: "o-2"},
		{Reason: authz.ReasonTokenInjected, Service: "orders", Cache: tokens.CacheRefresh, RequestID: "o-3"},
		{Reason: authz.ReasonTokenInjected, Service: "billing", Cache: tokens.CacheMiss, RequestID: "b-1"},
		{Reason: authz.ReasonNoGrant, Service: "public", RequestID: "p-1"},
		{Reason: authz.ReasonUnmatchedAllowed, RequestID: "u-1"},
		{Reason: authz.ReasonNoMatch, RequestID: "n-1"},
		{Reason: authz.ReasonUnavailable, Service: "orders", RequestID: "o-4"},
	} {
		m.ObserveCheck(d, time.Millisecond)
	}
	got := m.CheckCounts()
	slices.SortFunc(got, func(a, b CheckCount) int {
		return strings.Compare(string(a.Reason)+a.Service, string(b.Reason)+b.Service)
	})
	want := []CheckCount{
		{Reason: authz.ReasonNoGrant, Service: "public", Count: 1},
		{Reason: authz.ReasonNoMatch, Count: 1},
		{Reason: authz.ReasonUnavailable, Service: "orders", Count: 1},
		{Reason: authz.ReasonTokenInjected, Service: "billing", Count: 1, Misses: 1},
		{Reason: authz.ReasonTokenInjected, Service: "orders", Count: 3, Misses: 1},
		{Reason: authz.ReasonUnmatchedAllowed, Count: 1},
	}
	if !slices.Equal(got, want) {
		t.Errorf("counts\n%v\nwant\n%v", got, want)
	}
	if want := []string{"n-1", "o-4"}; !slices.Equal(denied, want) {
		t.Errorf("OnDenial heard of %v, want the denials only %v", denied, want)
	}
}

// BenchmarkObserveCheck is what counting one check costs: an allowed
// cache hit, with and without the status page's denial hook, which an
// allowed check must not pay for, and a denial that goes to the hook.
func BenchmarkObserveCheck(b *testing.B) {
	hit := authz.Decision{Reason: authz.ReasonTokenInjected, Service: "orders", Cache: tokens.CacheHit}
	deny := authz.Decision{Reason: authz.ReasonNoMatch, Message: "no service matches"}
	for _, bc := range []struct {
		name string
		hook bool
		d    authz.Decision
	}{
		{"hit", false, hit},
		{"hit-with-denial-hook", true, hit},
		{"denial-with-denial-hook", true, deny},
	} {
		b.Run(bc.name, func(b *testing.B) {
			m := New(func() tokens.CacheStats { return tokens.CacheStats{} })
			if bc.hook {
				m.OnDenial(func(authz.Decision) {})
			}
			b.ReportAllocs()
			for b.Loop() {
				m.ObserveCheck(bc.d, time.Microsecond)
			}
		})
	}
}
