package status

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthz/tokenauthz/authz"
	"github.com/tokenauthz/tokenauthz/tokens"
)

// counting is the next observer: it counts what it is told.
type counting struct{ n *int }

func (c counting) ObserveCheck(authz.Decision, time.Duration) { *c.n++ }

func TestObserverKeepsDenialsAndMisses(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	deny := func(i int) authz.Decision {
		return authz.Decision{Reason: authz.ReasonNoMatch, RequestID: fmt.Sprint("req-", i), Message: "no service matches"}
	}
	tests := []struct {
		name       string
		decisions  []authz.Decision
		wantIDs    []string // request ids of the denials kept, newest first
		wantMisses map[string]uint64
	}{
		{
			name: "allowed-checks-are-not-kept",
			decisions: []authz.Decision{
				{Reason: authz.ReasonTokenInjected, Service: "orders", Cache: tokens.CacheHit},
				{Reason: authz.ReasonTokenInjected, Service: "orders", Cache: tokens.CacheRefresh},
				{Reason: authz.ReasonNoGrant, Service: "public"},
				{Reason: authz.ReasonUnmatchedAllowed},
			},
			wantMisses: map[string]uint64{},
		},
		{
			name: "misses-counted-by-service",
			decisions: []authz.Decision{
				{Reason: authz.ReasonTokenInjected, Service: "orders", Cache: tokens.CacheMiss},
				{Reason: authz.ReasonTokenInjected, Service: "orders", Cache: tokens.CacheMiss},
				{Reason: authz.ReasonTokenInjected, Service: "billing", Cache: tokens.CacheMiss},
				{Reason: authz.ReasonTokenInjected, Service: "billing", Cache: tokens.CacheHit},
			},
			wantMisses: map[string]uint64{"orders": 2, "billing": 1},
		},
		{
			name:       "ring-keeps-the-last-three-newest-first",
			decisions:  []authz.Decision{deny(1), deny(2), deny(3), deny(4), deny(5)},
			wantIDs:    []string{"req-5", "req-4", "req-3"},
			wantMisses: map[string]uint64{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			p := New(Options{Denials: 3, Now: func() time.Time { return at }})
			obs := p.Observer(counting{&n})
			for _, d := range tc.decisions {
				obs.ObserveCheck(d, time.Millisecond)
			}
			if n != len(tc.decisions) {
				t.Errorf("next observer saw %d checks, want all %d", n, len(tc.decisions))
			}
			var ids []string
			for _, d := range p.denials.list() {
				ids = append(ids, d.RequestID)
				if d.Time != at || d.Status != 403 || d.Reason != string(authz.ReasonNoMatch) {
					t.Errorf("denial %+v: want time, status 403 and reason recorded", d)
				}
			}
			if fmt.Sprint(ids) != fmt.Sprint(tc.wantIDs) {
				t.Errorf("denials %v, want %v", ids, tc.wantIDs)
			}
			if got := p.misses.read(); fmt.Sprint(got) != fmt.Sprint(tc.wantMisses) {
				t.Errorf("misses %v, want %v", got, tc.wantMisses)
			}
		})
	}
}

func TestDenialMessageIsBounded(t *testing.T) {
	r := newDenials(1)
	r.add(authz.Decision{Reason: authz.ReasonInternal, Message: strings.Repeat("é", maxMessage)}, time.Now())
	got := r.list()[0].Message
	if len(got) > maxMessage+len("...") || !strings.HasSuffix(got, "...") || !strings.HasPrefix(got, "éé") {
		t.Errorf("message of %d bytes kept as %d bytes: %.20q...", 2*maxMessage, len(got), got)
	}
	if !strings.HasSuffix(strings.TrimSuffix(got, "..."), "é") {
		t.Errorf("clipped inside a character: %q", got[len(got)-8:])
	}
}
