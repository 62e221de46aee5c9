package metrics

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthz/tokenauthz/authz"
	"github.com/tokenauthz/tokenauthz/tokens"
)

func TestCheckCountsReadTheCheckSeries(t *testing.T) {
	m := New(func() tokens.CacheStats { return tokens.CacheStats{} })
	for _, d := range []authz.Decision{
		{Reason: authz.ReasonTokenInjected, Service: "orders"},
		{Reason: authz.ReasonTokenInjected, Service: "orders"},
		{Reason: authz.ReasonTokenInjected, Service: "billing"},
		{Reason: authz.ReasonNoMatch},
	} {
		m.ObserveCheck(d, time.Millisecond)
	}
	got := m.CheckCounts()
	slices.SortFunc(got, func(a, b CheckCount) int {
		return strings.Compare(string(a.Reason)+a.Service, string(b.Reason)+b.Service)
	})
	want := []CheckCount{
		{authz.ReasonNoMatch, "", 1},
		{authz.ReasonTokenInjected, "billing", 1},
		{authz.ReasonTokenInjected, "orders", 2},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
