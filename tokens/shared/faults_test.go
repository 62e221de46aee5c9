package shared_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tokenauthz/tokenauthz/internal/redistest"
	"github.com/tokenauthz/tokenauthz/tokens/shared"
)

// silentServer accepts connections and never answers: a Redis that hangs.
func silentServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	return l.Addr().String()
}

func TestRedisFaultsNeverDenyOrStall(t *testing.T) {
	protected := redistest.Start(t, redistest.Options{Password: "right-password"})
	tests := []struct {
		name         string
		addr         func(t *testing.T) string
		password     string
		opensBreaker bool
	}{
		{"wrong-password", func(*testing.T) string { return protected.Addr }, "wrong-password", true},
		{"hanging-server", silentServer, "", true},
		{"nothing-listening", func(t *testing.T) string {
			srv := redistest.Start(t, redistest.Options{})
			srv.Kill()
			return srv.Addr
		}, "", true},
		{"read-only-replica", func(t *testing.T) string {
			srv := redistest.Start(t, redistest.Options{})
			srv.CLI(t, "REPLICAOF", "127.0.0.1", "1") // a master that is not there: a read-only replica
			return srv.Addr
		}, "", false},
		{"out-of-memory", func(t *testing.T) string {
			srv := redistest.Start(t, redistest.Options{})
			srv.CLI(t, "CONFIG", "SET", "maxmemory", "1")
			srv.CLI(t, "CONFIG", "SET", "maxmemory-policy", "noeviction")
			return srv.Addr
		}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var obs counts
			c, err := shared.New(shared.Options{Addresses: []string{tt.addr(t)}, Password: tt.password, Keys: [][]byte{key(1)},
				Observer: &obs, Timeout: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			f := &fetcher{ttl: time.Hour}
			src := newSource(f, c)
			start := time.Now()
			for i := range 10 {
				r := req
				r.ClientID = fmt.Sprint("svc-", i)
				tok, err := src.Token(context.Background(), r)
				if err != nil || tok.AccessToken == "" {
					t.Fatalf("check %d denied: %v", i, err)
				}
			}
			// 10 cold keys: with every operation bounded by 100ms and the
			// breaker open after 3 failures, far below 10 x 5 timeouts.
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("10 cold checks took %v", d)
			}
			if n := f.calls.Load(); n != 10 {
				t.Errorf("%d token requests, want 10 (one per key, fetched alone)", n)
			}
			if obs.get("put/error")+obs.get("put/skipped")+obs.get("lock/error")+obs.get("lock/skipped") == 0 {
				t.Error("no failed or skipped operation counted")
			}
			if tt.opensBreaker && (c.Up() || obs.get("get/skipped") == 0) {
				t.Error("the breaker did not open")
			}
		})
	}
}
