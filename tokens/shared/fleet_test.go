package shared_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenauthz/tokenauthz/internal/redistest"
	"github.com/tokenauthz/tokenauthz/tokens"
)

// failing is a token endpoint that refuses every request with err.
type failing struct {
	calls atomic.Int64
	err   *tokens.Error
}

func (f *failing) Fetch(context.Context, string, tokens.Request) (tokens.Token, error) {
	f.calls.Add(1)
	return tokens.Token{}, f.err
}

func TestFailuresAreShared(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	exchange := req
	exchange.GrantType, exchange.SubjectToken = tokens.GrantTokenExchange, "subject-token-of-a-user"
	tests := []struct {
		name  string
		req   tokens.Request
		err   *tokens.Error
		class error
	}{
		{"unavailable-backoff", req, &tokens.Error{Class: tokens.ErrUnavailable, Status: 503}, tokens.ErrUnavailable},
		{"invalid-grant-for-a-subject", exchange, &tokens.Error{Class: tokens.ErrSubjectRejected, Status: 400, Code: "invalid_grant"}, tokens.ErrSubjectRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.FlushAll(t)
			f := &failing{err: tt.err}
			a := newSource(f, newCache(t, srv.Addr, nil, key(1)))
			b := newSource(f, newCache(t, srv.Addr, nil, key(1)))
			for _, src := range []*tokens.Source{a, b, a, b} {
				if _, err := src.Token(context.Background(), tt.req); !errors.Is(err, tt.class) {
					t.Fatalf("err = %v, want %v", err, tt.class)
				}
			}
			if n := f.calls.Load(); n != 1 {
				t.Errorf("%d token requests from two Sources within the backoff window, want 1", n)
			}
		})
	}
}

func TestRefreshOnceForTheFleet(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	f := &fetcher{ttl: 2 * time.Second}
	opts := func() tokens.Options {
		return tokens.Options{Fetcher: f, Shared: newCache(t, srv.Addr, nil, key(1)), Timeout: 200 * time.Millisecond,
			ExpirySkew: -1, RefreshBefore: time.Second}
	}
	a, b := tokens.NewSource(opts()), tokens.NewSource(opts())
	first, err := a.Token(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if tok, _ := b.Token(context.Background(), req); tok.AccessToken != first.AccessToken {
		t.Fatalf("b got %q, want a's %q", tok.AccessToken, first.AccessToken)
	}
	time.Sleep(1100 * time.Millisecond) // past the refresh point (1s at the latest)
	deadline := time.Now().Add(3 * time.Second)
	for {
		ta, _ := a.Token(context.Background(), req)
		tb, _ := b.Token(context.Background(), req)
		if ta.AccessToken != first.AccessToken && ta.AccessToken == tb.AccessToken {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not both refreshed to one token: a %q, b %q", ta.AccessToken, tb.AccessToken)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := f.calls.Load(); n != 2 {
		t.Errorf("%d token requests (one fetch, one refresh for two Sources), want 2", n)
	}
}
