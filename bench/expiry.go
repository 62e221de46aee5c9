package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
)

// expiryResult is what `bench expiry` found.
type expiryResult struct {
	TTL, Skew, RefreshBefore string
	Duration                 string
	Rate                     float64
	Keys                     int
	Checks, Errors           int64
	FirstError               string `json:",omitempty"`
	TokenRequests            int
	Refreshes, Misses        float64
	P50, P99, P999           float64 // whole run, us
	MedianWindowP99          float64
	MaxWindowP99             float64
	WindowsWithFetches       int
	MedianP99WithFetches     float64
	MedianP99WithoutFetches  float64
	Windows                  []window
}

// expiryCmd drives tokenauthz at a fixed rate for longer than the tokens
// live and prints p99 per window: refresh ahead should keep every check a
// cache hit, so expiry shows in the token request count, not in latency.
func expiryCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("expiry", flag.ContinueOnError)
	duration := fs.Duration("duration", 70*time.Second, "length of the run (longer than --ttl)")
	ttl := fs.Duration("ttl", 20*time.Second, "expires_in of the IdP's tokens")
	skew := fs.Duration("skew", 5*time.Second, "tokenauthz cache.expiry_skew")
	refresh := fs.Duration("refresh-before", 10*time.Second, "tokenauthz cache.refresh_before")
	rate := fs.Float64("rate", 1000, "checks per second (open loop)")
	users := fs.Int("users", 50, "users; each check is client credentials (one key for all) or an exchange (one key per user)")
	win := fs.Duration("window", time.Second, "latency window")
	nice := fs.Int("nice", -10, "nice value of tokenauthz, the IdP and the load generator (negative needs root; 0: unchanged)")
	results := fs.String("results", "", "results directory (default bench/results)")
	noWrite := fs.Bool("no-write", false, "print only, store nothing")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	m := describeMachine(ctx)
	lowerPriority(out, nice)
	stk, err := startStack(ctx, out, *ttl)
	if err != nil {
		return err
	}
	defer stk.Close()
	bins, idp := stk.bins, stk.idp
	toks, err := idp.UserTokens(ctx, "exp", *users, 2*time.Hour)
	if err != nil {
		return err
	}
	reqs := workload(toks)
	ta, err := startTokenauthz(ctx, bins, idp.Issuer, cacheOpts{skew: *skew, refreshBefore: *refresh, maxEntries: 100000}, procOptions{gomaxprocs: 2})
	if err != nil {
		return err
	}
	defer ta.proc.Stop()
	c, err := dial(ta.grpcAddr, 2)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.checkAll(ctx, reqs, 32, 10*time.Second); err != nil {
		return fmt.Errorf("warming: %w", err)
	}
	metrics := "http://" + ta.httpAddr + "/metrics"
	before, err := scrape(ctx, metrics)
	if err != nil {
		return err
	}

	// Count the IdP's token requests per window while the load runs.
	type count struct {
		at time.Duration
		n  int
	}
	var counts []count
	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	wg.Go(func() {
		for {
			n, err := idp.TokenRequests(ctx)
			if err == nil {
				counts = append(counts, count{time.Since(start), n})
			}
			select {
			case <-stop:
				return
			case <-time.After(*win / 4):
			}
		}
	})
	res := c.drive(ctx, loadSpec{concurrency: 200, duration: *duration, rate: *rate, reqs: reqs})
	close(stop)
	wg.Wait()
	after, err := scrape(ctx, metrics)
	if err != nil {
		return err
	}

	r := expiryResult{
		TTL: ttl.String(), Skew: skew.String(), RefreshBefore: refresh.String(), Duration: duration.String(), Rate: *rate,
		Keys: *users + 1, Checks: res.OK, Errors: res.Errors, FirstError: res.FirstError,
		Refreshes: after["tokenauthz_cache_refreshes_total"] - before["tokenauthz_cache_refreshes_total"],
		Misses:    after["tokenauthz_cache_misses_total"] - before["tokenauthz_cache_misses_total"],
		P50:       micros(res.Quantile(.5)), P99: micros(res.Quantile(.99)), P999: micros(res.Quantile(.999)),
		Windows: res.Windows(*win),
	}
	if len(counts) > 0 {
		r.TokenRequests = counts[len(counts)-1].n - counts[0].n
	}
	// Token requests per window: the count's growth across it.
	for i := range r.Windows {
		w := &r.Windows[i]
		lo, hi := -1, -1
		for _, c := range counts {
			if c.at <= w.Start {
				lo = c.n
			}
			if c.at <= w.Start+*win {
				hi = c.n
			}
		}
		if lo >= 0 && hi >= 0 {
			w.TokenRequestsDelta = hi - lo
		}
	}
	var all, with, without []float64
	for _, w := range r.Windows {
		if w.N == 0 {
			continue
		}
		p := micros(w.P99)
		all = append(all, p)
		if w.TokenRequestsDelta > 0 {
			with = append(with, p)
		} else {
			without = append(without, p)
		}
	}
	r.MedianWindowP99, r.WindowsWithFetches = median(all), len(with)
	if len(all) > 0 {
		r.MaxWindowP99 = slices.Max(all)
	}
	r.MedianP99WithFetches, r.MedianP99WithoutFetches = median(with), median(without)

	md := expiryMarkdown(m, r)
	if err := report(ctx, out, *results, *noWrite, m, "expiry", r, md); err != nil {
		return err
	}
	switch {
	case r.Errors > 0:
		return fmt.Errorf("%d checks failed: %s", r.Errors, r.FirstError)
	case r.Misses > 0:
		return fmt.Errorf("%v checks waited for a token: refresh ahead did not keep the cache warm", r.Misses)
	case *duration > *ttl && r.Refreshes == 0:
		return fmt.Errorf("no refresh in a run longer than the token TTL")
	}
	return nil
}

func expiryMarkdown(m machine, r expiryResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Expiry: `go run ./bench expiry --duration %s --ttl %s --skew %s --refresh-before %s --rate %.0f`\n\n", r.Duration, r.TTL, r.Skew, r.RefreshBefore, r.Rate)
	b.WriteString(m.markdown())
	fmt.Fprintf(&b, "\n%d keys (one client-credentials key shared by all, one exchange key per user), tokens live %s; %d checks, %d errors; %d token requests during the run, %.0f background refreshes, %.0f checks waited for a token (cache misses).\n\n",
		r.Keys, r.TTL, r.Checks, r.Errors, r.TokenRequests, r.Refreshes, r.Misses)
	fmt.Fprintf(&b, "Whole run: p50 %.0f us, p99 %.0f us, p99.9 %.0f us. Per-window p99: median %.0f us, max %.0f us; windows with token requests (%d): median p99 %.0f us; without: %.0f us.\n\n",
		r.P50, r.P99, r.P999, r.MedianWindowP99, r.MaxWindowP99, r.WindowsWithFetches, r.MedianP99WithFetches, r.MedianP99WithoutFetches)
	b.WriteString("| window start | checks | p50 us | p99 us | max us | token requests |\n|---|---|---|---|---|---|\n")
	for _, w := range r.Windows {
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %d |\n", w.Start, w.N, us(w.P50), us(w.P99), us(w.Max), w.TokenRequestsDelta)
	}
	return b.String()
}
