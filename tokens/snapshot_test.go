package tokens

import (
	"context"
	"testing"
	"time"
)

// failingFor is a token endpoint that refuses the requests of one service
// and answers the others as next does.
type failingFor struct {
	service string
	next    *fetcher
}

func (f failingFor) Fetch(ctx context.Context, tokenURL string, r Request) (Token, error) {
	if r.Service == f.service {
		return Token{}, &Error{Class: ErrUnavailable, Description: "down"}
	}
	return f.next.Fetch(ctx, tokenURL, r)
}

func TestServiceCaches(t *testing.T) {
	request := func(service, scope string) Request {
		r := ccRequest()
		r.Service, r.Scope = service, []string{scope}
		return r
	}
	tests := []struct {
		name    string
		refresh time.Duration // Options.RefreshBefore
		later   time.Duration // clock moved after the fetches
		want    map[string]ServiceCache
		// refresh window: NextRefresh of orders lies in [from, to] after the fetch
		from, to time.Duration
	}{
		{
			name: "tokens-and-failures-by-service", refresh: time.Minute,
			want: map[string]ServiceCache{
				"orders":  {Tokens: 2, NextExpiry: testNow.Add(10 * time.Minute)},
				"billing": {Backoff: 1},
			},
			// due refresh_before ahead of the end, up to a quarter of that earlier (jitter)
			from: 10*time.Minute - time.Minute - 15*time.Second, to: 9 * time.Minute,
		},
		{
			name: "refresh-off-plans-none", refresh: -1,
			want: map[string]ServiceCache{
				"orders":  {Tokens: 2, NextExpiry: testNow.Add(10 * time.Minute)},
				"billing": {Backoff: 1},
			},
		},
		{
			name: "ended-entries-are-not-counted", refresh: -1, later: 11 * time.Minute,
			want: map[string]ServiceCache{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			s := NewSource(Options{Fetcher: failingFor{"billing", &fetcher{clk: clk, ttl: 10 * time.Minute}},
				Now: clk.Now, ExpirySkew: -1, RefreshBefore: tc.refresh})
			for _, r := range []Request{request("orders", "read"), request("orders", "write"), request("billing", "invoices")} {
				s.Token(context.Background(), r)
			}
			clk.Add(tc.later)
			got := s.ServiceCaches()
			if tc.to > 0 {
				at := got["orders"].NextRefresh
				if at.Before(testNow.Add(tc.from)) || at.After(testNow.Add(tc.to)) {
					t.Errorf("orders NextRefresh = %v after the fetch, want within [%v, %v]", at.Sub(testNow), tc.from, tc.to)
				}
				c := got["orders"]
				c.NextRefresh = time.Time{}
				got["orders"] = c
			}
			if len(got) != len(tc.want) {
				t.Errorf("got %d services %v, want %d", len(got), got, len(tc.want))
			}
			for svc, want := range tc.want {
				if got[svc] != want {
					t.Errorf("%s: got %+v, want %+v", svc, got[svc], want)
				}
			}
		})
	}
}
