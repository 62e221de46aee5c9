package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// soakSample is one reading of the tokenauthz process.
type soakSample struct {
	At         time.Duration `json:"at_ns"`
	Goroutines float64       `json:"goroutines"`
	HeapInuse  float64       `json:"heap_inuse_bytes"`
	Entries    float64       `json:"cache_entries"`
	RSS        int64         `json:"rss_bytes"`
}

type soakResult struct {
	Duration, TTL, Warmup string
	Rate                  float64
	Users, Population     int
	MaxEntries            int
	Checks, Errors        int64
	FirstError            string `json:",omitempty"`
	TokenRequests         int
	P50, P99, P999        float64
	Samples               []soakSample
	// After warm-up, first half vs second half.
	GoroutinesFirst, GoroutinesSecond float64
	HeapFirst, HeapSecond             float64
	MaxEntriesSeen                    float64
	Problems                          []string `json:",omitempty"`
}

// soakCmd runs tokenauthz under steady load with short-lived tokens and a
// sliding population of users for --duration, sampling its goroutines,
// heap and cache size, and fails on any error or on growth after warm-up.
func soakCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	duration := fs.Duration("duration", 10*time.Minute, "length of the soak")
	ttl := fs.Duration("ttl", 20*time.Second, "expires_in of the IdP's tokens (churn)")
	skew := fs.Duration("skew", 5*time.Second, "tokenauthz cache.expiry_skew")
	refresh := fs.Duration("refresh-before", 10*time.Second, "tokenauthz cache.refresh_before")
	rate := fs.Float64("rate", 500, "checks per second (open loop)")
	users := fs.Int("users", 500, "users active at any time; one new user joins (and the oldest leaves) every --shift")
	shift := fs.Duration("shift", time.Second, "how often the active users slide by one")
	maxEntries := fs.Int("max-entries", 100000, "tokenauthz cache.max_entries")
	every := fs.Duration("sample", 5*time.Second, "sampling interval")
	warmup := fs.Duration("warmup", 0, "excluded from the growth check (default: a fifth of --duration, at most 1m)")
	nice := fs.Int("nice", -10, "nice value of tokenauthz, the IdP and the load generator (negative needs root; 0: unchanged)")
	results := fs.String("results", "", "results directory (default bench/results)")
	noWrite := fs.Bool("no-write", false, "print only, store nothing")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if *warmup == 0 {
		*warmup = min(*duration/5, time.Minute)
	}
	m := describeMachine(ctx)
	lowerPriority(out, nice)
	stk, err := startStack(ctx, out, *ttl)
	if err != nil {
		return err
	}
	defer stk.Close()
	bins, idp := stk.bins, stk.idp
	population := *users + int(*duration / *shift) + 1
	toks, err := idp.UserTokens(ctx, "soak", population, *duration+2*time.Hour)
	if err != nil {
		return err
	}
	reqs := workload(toks) // 2 per user: [2u] client credentials, [2u+1] exchange
	ta, err := startTokenauthz(ctx, bins, idp.Issuer, cacheOpts{skew: *skew, refreshBefore: *refresh, maxEntries: *maxEntries}, procOptions{gomaxprocs: 2})
	if err != nil {
		return err
	}
	defer ta.proc.Stop()
	c, err := dial(ta.grpcAddr, 2)
	if err != nil {
		return err
	}
	defer c.Close()
	// The active users at `at` are those from at/shift on.
	pick := func(i int64, at time.Duration) *authv3.CheckRequest {
		first := min(int(at / *shift), population-*users)
		u := first + int(i/2)%*users
		return reqs[2*u+int(i%2)]
	}

	metrics := "http://" + ta.httpAddr + "/metrics"
	n0, err := idp.TokenRequests(ctx)
	if err != nil {
		return err
	}
	r := soakResult{Duration: duration.String(), TTL: ttl.String(), Warmup: warmup.String(), Rate: *rate,
		Users: *users, Population: population, MaxEntries: *maxEntries}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	var sampleErr error
	wg.Go(func() {
		for {
			mt, err := scrape(ctx, metrics)
			if err != nil {
				sampleErr = err
				return
			}
			rss, _ := rssBytes(ta.proc.Pid())
			s := soakSample{At: time.Since(start), Goroutines: mt["go_goroutines"], HeapInuse: mt["go_memstats_heap_inuse_bytes"],
				Entries: mt["tokenauthz_cache_entries"], RSS: rss}
			r.Samples = append(r.Samples, s)
			fmt.Fprintf(out, "%6s goroutines %4.0f heap_inuse %6s MiB entries %5.0f RSS %6s MiB\n",
				s.At.Round(time.Second), s.Goroutines, mib(int64(s.HeapInuse)), s.Entries, mib(s.RSS))
			select {
			case <-stop:
				return
			case <-time.After(*every):
			}
		}
	})
	res := c.drive(ctx, loadSpec{concurrency: 200, duration: *duration, rate: *rate, pick: pick, reqs: reqs, timeout: 5 * time.Second})
	time.Sleep(min(*every, 2*time.Second)) // one more sample after the load
	close(stop)
	wg.Wait()
	if sampleErr != nil {
		return fmt.Errorf("sampling %s: %w", metrics, sampleErr)
	}
	n1, err := idp.TokenRequests(ctx)
	if err != nil {
		return err
	}
	r.Checks, r.Errors, r.FirstError, r.TokenRequests = res.OK, res.Errors, res.FirstError, n1-n0
	r.P50, r.P99, r.P999 = micros(res.Quantile(.5)), micros(res.Quantile(.99)), micros(res.Quantile(.999))
	r.judge(*warmup)

	md := soakMarkdown(m, r)
	if err := report(ctx, out, *results, *noWrite, m, "soak", r, md); err != nil {
		return err
	}
	if len(r.Problems) > 0 {
		return fmt.Errorf("%s", strings.Join(r.Problems, "; "))
	}
	return nil
}

// Growth allowed from the first to the second half after warm-up: heap may
// vary with GC timing and cache turnover, goroutines with checks in flight
// and background refreshes.
const (
	soakHeapFactor     = 1.25
	soakHeapSlack      = 4 << 20
	soakGoroutineSlack = 25
)

// judge compares the first and second halves of the samples after warmup.
func (r *soakResult) judge(warmup time.Duration) {
	if r.Errors > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("%d checks failed, first: %s", r.Errors, r.FirstError))
	}
	var after []soakSample
	for _, s := range r.Samples {
		r.MaxEntriesSeen = max(r.MaxEntriesSeen, s.Entries)
		if s.At >= warmup {
			after = append(after, s)
		}
	}
	if r.MaxEntriesSeen > float64(r.MaxEntries) {
		r.Problems = append(r.Problems, fmt.Sprintf("cache held %.0f entries > max_entries %d", r.MaxEntriesSeen, r.MaxEntries))
	}
	if len(after) < 2 {
		r.Problems = append(r.Problems, fmt.Sprintf("only %d samples after warm-up: run longer or sample more often", len(after)))
		return
	}
	first, second := after[:len(after)/2], after[len(after)/2:]
	peak := func(ss []soakSample, f func(soakSample) float64) float64 {
		m := 0.0
		for _, s := range ss {
			m = max(m, f(s))
		}
		return m
	}
	goroutines := func(s soakSample) float64 { return s.Goroutines }
	heap := func(s soakSample) float64 { return s.HeapInuse }
	r.GoroutinesFirst, r.GoroutinesSecond = peak(first, goroutines), peak(second, goroutines)
	r.HeapFirst, r.HeapSecond = peak(first, heap), peak(second, heap)
	if r.GoroutinesSecond > r.GoroutinesFirst+soakGoroutineSlack {
		r.Problems = append(r.Problems, fmt.Sprintf("goroutines grew: peak %.0f then %.0f", r.GoroutinesFirst, r.GoroutinesSecond))
	}
	if r.HeapSecond > r.HeapFirst*soakHeapFactor+soakHeapSlack {
		r.Problems = append(r.Problems, fmt.Sprintf("heap grew: peak %s then %s MiB", mib(int64(r.HeapFirst)), mib(int64(r.HeapSecond))))
	}
}

func soakMarkdown(m machine, r soakResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Soak: `go run ./bench soak --duration %s --ttl %s --rate %.0f --users %d --max-entries %d`\n\n", r.Duration, r.TTL, r.Rate, r.Users, r.MaxEntries)
	b.WriteString(m.markdown())
	verdict := "**passed**"
	if len(r.Problems) > 0 {
		verdict = "**failed**: " + strings.Join(r.Problems, "; ")
	}
	fmt.Fprintf(&b, "\n%s. %d checks at %.0f/s, %d errors; %d users active at a time out of %d (one joins, the oldest leaves, every second), tokens living %s: %d token requests. Latency p50 %.0f us, p99 %.0f us, p99.9 %.0f us.\n\n",
		verdict, r.Checks, r.Rate, r.Errors, r.Users, r.Population, r.TTL, r.TokenRequests, r.P50, r.P99, r.P999)
	fmt.Fprintf(&b, "After the %s warm-up, peak goroutines %.0f (first half) vs %.0f (second half); peak heap in use %s vs %s MiB; at most %.0f cache entries (max_entries %d).\n\n",
		r.Warmup, r.GoroutinesFirst, r.GoroutinesSecond, mib(int64(r.HeapFirst)), mib(int64(r.HeapSecond)), r.MaxEntriesSeen, r.MaxEntries)
	b.WriteString("| at | goroutines | heap in use MiB | cache entries | RSS MiB |\n|---|---|---|---|---|\n")
	for _, s := range r.Samples {
		fmt.Fprintf(&b, "| %s | %.0f | %s | %.0f | %s |\n", s.At.Round(time.Second), s.Goroutines, mib(int64(s.HeapInuse)), s.Entries, mib(s.RSS))
	}
	return b.String()
}
