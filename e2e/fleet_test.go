package e2e

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/tokenauthz/tokenauthz/internal/hydra"
	"github.com/tokenauthz/tokenauthz/internal/redistest"
)

// fleetConfig is one replica's configuration: one client-credentials
// service per scope, host <scope>.internal, and the shared cache block.
// Tokens live 10s (Hydra's TTL below): cached 8s, refreshed from 3-4s on.
const fleetConfig = `
cache:
  expiry_skew: 2s
  refresh_before: 4s
  shared:
%s
defaults: {issuer: %s, client_id: %s, client_secret: %s}
services:
%s`

const fleetTTL = 10 * time.Second

// fleetRun is a Hydra client and the configuration its replicas share.
type fleetRun struct {
	h              *hydra.Hydra
	dir            string
	client, secret string
	scopes         []string
}

func newFleetRun(t *testing.T, h *hydra.Hydra, client string, scopes ...string) *fleetRun {
	t.Helper()
	f := &fleetRun{h: h, dir: t.TempDir(), client: client, secret: client + "-s3cret-value", scopes: scopes}
	h.CreateClient(t, hydra.Client{ID: f.client, Secret: f.secret, Scopes: scopes})
	return f
}

// config is the YAML of a replica using the shared block given (its
// lines indented four spaces).
func (f *fleetRun) config(shared string) string {
	var svcs strings.Builder
	for _, s := range f.scopes {
		fmt.Fprintf(&svcs, "  %s: {hosts: [%s.internal], grant_type: client_credentials, scope: %s}\n", strings.ReplaceAll(s, ".", "-"), s, s)
	}
	return fmt.Sprintf(fleetConfig, shared, f.h.Issuer(), f.client, f.secret, svcs.String())
}

func (f *fleetRun) start(t *testing.T, n int, shared string) []*replica {
	t.Helper()
	var out []*replica
	for i := range n {
		out = append(out, startReplica(t, f.dir, fmt.Sprintf("replica-%d", i), f.config(shared)))
	}
	return out
}

func standalone(addr, keys string) string {
	return fmt.Sprintf("    addresses: [%q]\n    keys_file: %s\n    prefix: \"fleet:\"\n", addr, keys)
}

// oneKeyOneRequest is the core claim: 3 x 200 concurrent cold checks of
// one key over the fleet make one token request, and all get its token.
func oneKeyOneRequest(t *testing.T, f *fleetRun, fleet []*replica, scope string) string {
	t.Helper()
	toks := burst(t, fleet, request("GET", scope+".internal", "/x", ""), 200)
	for i, tok := range toks {
		if tok != toks[0] {
			t.Fatalf("check %d got another token than check 0", i)
		}
	}
	if n := f.h.TokenRequestsFor(f.client); n != 1 {
		t.Fatalf("%d token requests for %d concurrent cold checks over %d replicas, want 1", n, len(toks), len(fleet))
	}
	return toks[0]
}

func TestFleet(t *testing.T) {
	h := hydra.StartWith(t, hydra.Options{AccessTokenTTL: fleetTTL})

	t.Run("3-replicas-one-request-then-one-refresh", func(t *testing.T) {
		srv := redistest.Start(t, redistest.Options{})
		f := newFleetRun(t, h, "fleet-refresh", "fleet.orders.read")
		fleet := f.start(t, 3, standalone(srv.Addr, keysFile(t, f.dir, "keys", 'a')))
		first := oneKeyOneRequest(t, f, fleet, "fleet.orders.read")
		issued := time.Now()
		// Past the refresh point (3-4s), before the end (8s): every replica
		// keeps serving, and they all move to one new token.
		time.Sleep(3 * time.Second)
		for {
			var toks []string
			for _, r := range fleet {
				toks = append(toks, injected(t, r.client, request("GET", "fleet.orders.read.internal", "/x", "")))
			}
			if toks[0] != first && toks[1] == toks[0] && toks[2] == toks[0] {
				break
			}
			if time.Since(issued) > 7*time.Second {
				t.Fatalf("the fleet did not move to one refreshed token before the old one's end")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if n := h.TokenRequestsFor(f.client); n != 2 {
			t.Errorf("%d token requests after the refresh point, want 2 (1 refresh for the fleet)", n)
		}
		scanRedis(t, srv.Scan(t), []string{first, f.client, f.secret, "fleet.orders.read"})
	})

	t.Run("redis-cluster-one-request", func(t *testing.T) {
		cl := redistest.StartCluster(t)
		f := newFleetRun(t, h, "fleet-cluster", "fleet.cluster.read")
		shared := fmt.Sprintf("    addresses: [%s]\n    keys_file: %s\n", strings.Join(quoted(cl.Addrs()), ", "), keysFile(t, f.dir, "keys", 'c'))
		tok := oneKeyOneRequest(t, f, f.start(t, 3, shared), "fleet.cluster.read")
		scanRedis(t, cl.Scan(t), []string{tok, f.client, f.secret, "fleet.cluster.read"})
	})

	t.Run("tls-with-ca-file", func(t *testing.T) {
		srv := redistest.Start(t, redistest.Options{TLS: true, Password: "redis-pass-value"})
		f := newFleetRun(t, h, "fleet-tls", "fleet.tls.read")
		shared := standalone(srv.Addr, keysFile(t, f.dir, "keys", 't')) +
			fmt.Sprintf("    tls: {ca_file: %s}\n    password: redis-pass-value\n", srv.CAFile)
		fleet := f.start(t, 3, shared)
		oneKeyOneRequest(t, f, fleet, "fleet.tls.read")
		var hits float64
		for _, r := range fleet {
			hits += r.metric(t, `tokenauthz_shared_cache_operations_total{op="get",outcome="hit"}`)
		}
		if hits < 2 { // the two replicas that did not fetch read the entry
			t.Errorf("%v shared hits over TLS, want at least 2", hits)
		}
	})

	t.Run("other-keys-file-reads-nothing", func(t *testing.T) {
		srv := redistest.Start(t, redistest.Options{})
		f := newFleetRun(t, h, "fleet-keys", "fleet.keys.read")
		same := f.start(t, 2, standalone(srv.Addr, keysFile(t, f.dir, "keys", 'k')))
		other := startReplica(t, f.dir, "other-keys", f.config(standalone(srv.Addr, keysFile(t, f.dir, "other-keys", 'o'))))
		req := request("GET", "fleet.keys.read.internal", "/x", "")
		tok := injected(t, same[0].client, req)
		if got := injected(t, same[1].client, req); got != tok {
			t.Error("a replica with the same keys did not get the shared token")
		}
		got := injected(t, other.client, req)
		if got == tok {
			t.Error("the replica with another keys_file served the others' token")
		}
		if n := h.TokenRequestsFor(f.client); n != 2 {
			t.Errorf("%d token requests, want 2 (one per keys_file)", n)
		}
		if injected(t, other.client, req) != got {
			t.Error("the replica with another keys_file does not serve its own fetch")
		}
	})

	t.Run("redis-killed-mid-load-no-failed-check-then-sharing-resumes", func(t *testing.T) {
		srv := redistest.Start(t, redistest.Options{})
		scopes := []string{"fleet.kill.after"}
		for i := range 8 {
			scopes = append(scopes, fmt.Sprintf("fleet.kill.s%d", i))
		}
		f := newFleetRun(t, h, "fleet-kill", scopes...)
		fleet := f.start(t, 3, standalone(srv.Addr, keysFile(t, f.dir, "keys", 'r')))
		// 3s of load over the 8 keys, each first asked at its own time, so
		// some go cold while Redis is down; Redis is killed at 0.6s and
		// back at 1.8s.
		var failed, checks atomic.Int64
		start := time.Now()
		var wg sync.WaitGroup
		for w := range 6 {
			wg.Go(func() {
				for i := 0; time.Since(start) < 3*time.Second; i++ {
					k := min(int(time.Since(start)/(350*time.Millisecond)), 7)
					scope := fmt.Sprintf("fleet.kill.s%d", (w+i)%(k+1))
					resp, err := fleet[(w+i)%3].client.Check(t.Context(), request("GET", scope+".internal", "/x", ""))
					checks.Add(1)
					if err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
						failed.Add(1)
					}
					time.Sleep(5 * time.Millisecond)
				}
			})
		}
		time.Sleep(600 * time.Millisecond)
		srv.Kill()
		time.Sleep(1200 * time.Millisecond)
		srv.Restart(t)
		wg.Wait()
		if n := failed.Load(); n != 0 {
			t.Fatalf("%d of %d checks failed across Redis's outage", n, checks.Load())
		}
		t.Logf("%d checks, none failed", checks.Load())
		deadline := time.Now().Add(15 * time.Second)
		for _, r := range fleet {
			for r.metric(t, "tokenauthz_shared_cache_up") != 1 {
				if time.Now().After(deadline) {
					t.Fatalf("%s: tokenauthz_shared_cache_up not back to 1", r.name)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		before := h.TokenRequestsFor(f.client)
		toks := burst(t, fleet, request("GET", "fleet.kill.after.internal", "/x", ""), 50)
		if n := h.TokenRequestsFor(f.client) - before; n != 1 {
			t.Errorf("after Redis came back: %d token requests for a cold key over 3 replicas, want 1 (sharing resumed)", n)
		}
		for _, tok := range toks {
			if tok != toks[0] {
				t.Fatal("replicas serve different tokens for one key after Redis came back")
			}
		}
	})
}

func quoted(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// scanRedis fails the test if any key or value in Redis holds one of the
// run's credentials or names in clear, or a hash of a token.
func scanRedis(t *testing.T, entries map[string]string, secrets []string) {
	t.Helper()
	if len(entries) == 0 {
		t.Fatal("Redis holds nothing: the scan would prove nothing")
	}
	var all []string
	for _, s := range secrets {
		sum := sha256.Sum256([]byte(s))
		all = append(all, s, hex.EncodeToString(sum[:]), base64.RawURLEncoding.EncodeToString(sum[:]), base64.StdEncoding.EncodeToString(sum[:]))
		if i := strings.LastIndexByte(s, '.'); i > 0 && len(s)-i > 20 { // a JWT's signature alone
			all = append(all, s[i+1:])
		}
	}
	if found := inClear(entries, all); len(found) > 0 {
		t.Fatalf("Redis holds credentials in clear: %v", found)
	}
	t.Logf("scanned %d Redis keys and values for %d strings: none found", len(entries), len(all))
}
