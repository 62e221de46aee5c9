package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/internal/app"
)

// coldResult is what `bench cold` found.
type coldResult struct {
	Concurrent          int     `json:"concurrent"`
	SingleFlightCC      int     `json:"token_requests_for_concurrent_cold_client_credentials"`
	SingleFlightXchg    int     `json:"token_requests_for_concurrent_cold_exchange"`
	Users               int     `json:"users"`
	Exchanges           int     `json:"exchanges"`
	Entries             uint64  `json:"entries_after"`
	HeapBefore          uint64  `json:"heap_alloc_before"`
	HeapAfter           uint64  `json:"heap_alloc_after"`
	BytesPerEntry       float64 `json:"bytes_per_entry"`
	TokenLen            int     `json:"access_token_len"`
	FillSeconds         float64 `json:"fill_seconds"`
	BoundMaxEntries     int     `json:"bound_max_entries"`
	BoundExchanges      int     `json:"bound_exchanges"`
	BoundMaxSeenEntries uint64  `json:"bound_max_seen_entries"`
	BoundEvictions      uint64  `json:"bound_evictions"`
}

// coldCmd checks the cold path with tokenauthz in this process (so its heap
// can be read after a GC) and the IdP as a separate process (so the IdP's
// record of issued tokens is not counted).
func coldCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("cold", flag.ContinueOnError)
	users := fs.Int("users", 10000, "distinct users on the token-exchange route")
	concurrent := fs.Int("concurrent", 1000, "concurrent checks for one cold key")
	bound := fs.Int("bound", 0, "max_entries for the bounded run (default users/2)")
	results := fs.String("results", "", "results directory (default bench/results)")
	noWrite := fs.Bool("no-write", false, "print only, store nothing")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if *bound == 0 {
		*bound = max(*users/2, 1)
	}
	m := describeMachine(ctx)
	stk, err := startStack(ctx, out, time.Hour)
	if err != nil {
		return err
	}
	defer stk.Close()
	idp := stk.idp
	start := time.Now()
	toks, err := idp.UserTokens(ctx, "cold", *users+1, 2*time.Hour)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "minted %d user tokens (%s)\n", len(toks), time.Since(start).Round(time.Millisecond))
	single, toks := toks[0], toks[1:]
	var xreqs []*authv3.CheckRequest
	for i, t := range toks {
		xreqs = append(xreqs, checkRequest(t, kindExchange, i))
	}
	r := coldResult{Concurrent: *concurrent, Users: *users, BoundMaxEntries: *bound}

	// 1. One cold key, many concurrent checks: one token request.
	a, c, err := startInProcess(ctx, idp.Issuer, defaultCache)
	if err != nil {
		return err
	}
	defer a.Shutdown()
	defer c.Close()
	if r.SingleFlightCC, err = concurrentCold(ctx, idp, c, checkRequest(single, kindClientCredentials, 0), *concurrent); err != nil {
		return err
	}
	if r.SingleFlightXchg, err = concurrentCold(ctx, idp, c, checkRequest(single, kindExchange, 0), *concurrent); err != nil {
		return err
	}
	fmt.Fprintf(out, "%d concurrent checks, one cold key: %d token request (client credentials), %d (token exchange)\n",
		*concurrent, r.SingleFlightCC, r.SingleFlightXchg)

	// 2. Distinct users: one exchange each; heap per cached entry.
	entries0 := a.Source.Stats().Entries
	r.HeapBefore = liveHeap()
	n0, err := idp.TokenRequests(ctx)
	if err != nil {
		return err
	}
	start = time.Now()
	if err := c.checkAll(ctx, xreqs, 64, 30*time.Second); err != nil {
		return err
	}
	r.FillSeconds = time.Since(start).Seconds()
	n1, err := idp.TokenRequests(ctx)
	if err != nil {
		return err
	}
	r.Exchanges = n1 - n0
	r.Entries = a.Source.Stats().Entries
	r.HeapAfter = liveHeap()
	r.BytesPerEntry = float64(int64(r.HeapAfter)-int64(r.HeapBefore)) / float64(r.Entries-entries0)
	resp, err := c.stubs[0].Check(ctx, xreqs[0])
	if err != nil {
		return err
	}
	r.TokenLen = len(strings.TrimPrefix(resp.GetOkResponse().GetHeaders()[0].GetHeader().GetValue(), "Bearer "))
	fmt.Fprintf(out, "%d users on the exchange route: %d exchanges in %.1fs, %d cache entries; live heap %s -> %s MiB: %.0f bytes per entry (access token %d bytes)\n",
		*users, r.Exchanges, r.FillSeconds, r.Entries, mib(int64(r.HeapBefore)), mib(int64(r.HeapAfter)), r.BytesPerEntry, r.TokenLen)
	a.Shutdown()

	// 3. The same users against max_entries below their number.
	bounded := defaultCache
	bounded.maxEntries = *bound
	b, bc, err := startInProcess(ctx, idp.Issuer, bounded)
	if err != nil {
		return err
	}
	defer b.Shutdown()
	defer bc.Close()
	var maxSeen atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			if n := b.Source.Stats().Entries; n > maxSeen.Load() {
				maxSeen.Store(n)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	})
	n0, _ = idp.TokenRequests(ctx)
	err = bc.checkAll(ctx, xreqs, 64, 30*time.Second)
	close(stop)
	wg.Wait()
	if err != nil {
		return err
	}
	n1, _ = idp.TokenRequests(ctx)
	st := b.Source.Stats()
	r.BoundExchanges, r.BoundMaxSeenEntries, r.BoundEvictions = n1-n0, max(maxSeen.Load(), st.Entries), st.Evictions
	fmt.Fprintf(out, "max_entries %d, %d users: %d exchanges, at most %d entries seen, %d evicted\n",
		*bound, *users, r.BoundExchanges, r.BoundMaxSeenEntries, r.BoundEvictions)

	var problems []string
	if r.SingleFlightCC != 1 || r.SingleFlightXchg != 1 {
		problems = append(problems, fmt.Sprintf("single flight: %d and %d token requests, want 1 each", r.SingleFlightCC, r.SingleFlightXchg))
	}
	if r.Exchanges != *users || r.BoundExchanges != *users {
		problems = append(problems, fmt.Sprintf("exchanges: %d and %d, want %d each", r.Exchanges, r.BoundExchanges, *users))
	}
	if r.BoundMaxSeenEntries > uint64(*bound) {
		problems = append(problems, fmt.Sprintf("entries reached %d > max_entries %d", r.BoundMaxSeenEntries, *bound))
	}
	md := coldMarkdown(m, r)
	if err := report(ctx, out, *results, *noWrite, m, "cold", r, md); err != nil {
		return err
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

// startInProcess starts tokenauthz (internal/app) in this process against
// issuer, and a client to it.
func startInProcess(ctx context.Context, issuer string, co cacheOpts) (*app.App, *client, error) {
	cfg, err := config.Parse("bench.yaml", []byte(configText("127.0.0.1:0", "127.0.0.1:0", issuer, co)))
	if err != nil {
		return nil, nil, err
	}
	a, err := app.Start(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, nil, err
	}
	if err := waitOK(ctx, "http://"+a.HTTPAddr()+"/readyz", 30*time.Second); err != nil {
		a.Shutdown()
		return nil, nil, err
	}
	c, err := dial(a.GRPCAddr(), 4)
	if err != nil {
		a.Shutdown()
		return nil, nil, err
	}
	return a, c, nil
}

// concurrentCold sends n checks for one cold key at once and returns how
// many token requests reached the IdP meanwhile.
func concurrentCold(ctx context.Context, idp *idpClient, c *client, req *authv3.CheckRequest, n int) (int, error) {
	// Connections up first, so the checks really arrive together.
	for _, cc := range c.conns {
		cc.Connect()
	}
	before, err := idp.TokenRequests(ctx)
	if err != nil {
		return 0, err
	}
	gate := make(chan struct{})
	errc := make(chan error, n)
	var ready, wg sync.WaitGroup
	for i := range n {
		ready.Add(1)
		wg.Go(func() {
			ready.Done()
			<-gate
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			resp, err := c.stubs[i%len(c.stubs)].Check(cctx, req)
			if err == nil {
				err = okWithHeader(resp)
			}
			if err != nil {
				errc <- err
			}
		})
	}
	ready.Wait()
	close(gate)
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return 0, fmt.Errorf("concurrent cold check: %w", err)
	}
	after, err := idp.TokenRequests(ctx)
	return after - before, err
}

// liveHeap is the heap still reachable after a full collection.
func liveHeap() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func coldMarkdown(m machine, r coldResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Cold path: `go run ./bench cold --users %d --concurrent %d --bound %d`\n\n", r.Users, r.Concurrent, r.BoundMaxEntries)
	b.WriteString(m.markdown())
	b.WriteString("\n| check | result | want |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| %d concurrent checks, one cold client-credentials key | %d token request | 1 |\n", r.Concurrent, r.SingleFlightCC)
	fmt.Fprintf(&b, "| %d concurrent checks, one cold token-exchange key | %d token request | 1 |\n", r.Concurrent, r.SingleFlightXchg)
	fmt.Fprintf(&b, "| %d distinct users, token-exchange route | %d exchanges, %d entries, %.1f s | %d exchanges |\n", r.Users, r.Exchanges, r.Entries, r.FillSeconds, r.Users)
	fmt.Fprintf(&b, "| live heap (after GC) before -> after | %s -> %s MiB | |\n", mib(int64(r.HeapBefore)), mib(int64(r.HeapAfter)))
	fmt.Fprintf(&b, "| bytes per cached entry | %.0f (access token itself: %d bytes) | reported |\n", r.BytesPerEntry, r.TokenLen)
	fmt.Fprintf(&b, "| same users, max_entries %d | %d exchanges, at most %d entries, %d evicted | entries <= %d |\n",
		r.BoundMaxEntries, r.BoundExchanges, r.BoundMaxSeenEntries, r.BoundEvictions, r.BoundMaxEntries)
	return b.String()
}
