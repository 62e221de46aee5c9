package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// fleetConfig is a replica's configuration in `bench fleet`: cc services on
// client credentials (one key each) and a token-exchange endpoint (one key
// per user).
const fleetConfig = `listen: {grpc: %q, http: %q, admin: "127.0.0.1:0"}
cache: {expiry_skew: %s, refresh_before: %s%s}
defaults: {issuer: %s, client_id: %s, client_secret: %s}
services:
  orders:
    hosts: [orders.internal]
    path_prefix: /v1
    grant_type: client_credentials
    endpoints:
      history: {path: /orders/history, grant_type: token_exchange, scope: orders.history, audience: orders}
%s`

// fleetOpts are the flags of `bench fleet`.
type fleetOpts struct {
	replicas            []int
	ccKeys, xKeys       int
	ttl                 time.Duration
	lifetimes           int
	rate                float64
	skew, refreshBefore time.Duration
	latKeys             int
	results             string
	noWrite             bool
}

// fleetRow is one fleet size, with or without the shared cache.
type fleetRow struct {
	Replicas          int     `json:"replicas"`
	Shared            bool    `json:"shared"`
	Keys              int     `json:"keys"`
	ColdTokenRequests int     `json:"token_requests_cold"` // every key's first check on every replica at once
	TokenRequests     int     `json:"token_requests"`      // the whole run
	Lifetimes         float64 `json:"lifetimes"`           // run length / token lifetime
	PerKeyPerLifetime float64 `json:"token_requests_per_key_per_lifetime"`
	FirstCheckP50     float64 `json:"first_check_p50_us"`
	FirstCheckMax     float64 `json:"first_check_max_us"`
	Checks, Errors    int64
	FirstError        string `json:",omitempty"`
}

// tierLatency compares, on one key at a time, a check that fetches, a
// check on another replica answered from Redis, and a repeat there.
type tierLatency struct {
	Keys                int     `json:"keys"`
	FetchP50            float64 `json:"fetch_p50_us"`
	SecondTierP50       float64 `json:"second_tier_hit_p50_us"`
	FirstTierP50        float64 `json:"first_tier_hit_p50_us"`
	RedisEntries        int     `json:"redis_entries"`
	MemoryUsagePerEntry float64 `json:"redis_memory_usage_bytes_per_entry"`
	UsedMemoryPerEntry  float64 `json:"redis_used_memory_delta_bytes_per_entry"`
	AccessTokenLen      int     `json:"access_token_len"`
}

func fleetCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("fleet", flag.ContinueOnError)
	var o fleetOpts
	replicas := fs.String("replicas", "1,3,10", "fleet sizes, comma-separated")
	fs.IntVar(&o.ccKeys, "cc-keys", 10, "client-credentials keys (one service each)")
	fs.IntVar(&o.xKeys, "exchange-keys", 10, "token-exchange keys (one user each)")
	fs.DurationVar(&o.ttl, "ttl", 20*time.Second, "expires_in of the IdP's tokens")
	fs.IntVar(&o.lifetimes, "lifetimes", 2, "token lifetimes each run lasts")
	fs.Float64Var(&o.rate, "rate", 300, "checks per second over the whole fleet (open loop)")
	fs.DurationVar(&o.skew, "skew", time.Second, "cache.expiry_skew")
	fs.DurationVar(&o.refreshBefore, "refresh-before", 2*time.Second, "cache.refresh_before")
	fs.IntVar(&o.latKeys, "latency-keys", 100, "keys for the tier latency comparison")
	fs.StringVar(&o.results, "results", "", "results directory (default bench/results)")
	fs.BoolVar(&o.noWrite, "no-write", false, "print only, store nothing")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	for _, s := range strings.Split(*replicas, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return errUsage
		}
		o.replicas = append(o.replicas, n)
	}
	m := describeMachine(ctx)
	stk, err := startStack(ctx, out, o.ttl)
	if err != nil {
		return err
	}
	defer stk.Close()
	rs, err := startRedis(ctx, stk.bins.dir)
	if err != nil {
		return err
	}
	defer rs.Close()
	users, err := stk.idp.UserTokens(ctx, "fleet", o.xKeys+o.latKeys, 2*time.Hour)
	if err != nil {
		return err
	}
	keys := fleetKeys(o.ccKeys, users[:o.xKeys])
	var rows []fleetRow
	for _, n := range o.replicas {
		for _, shared := range []bool{false, true} {
			row, err := runFleet(ctx, stk, rs, o, n, shared, keys)
			if err != nil {
				return err
			}
			rows = append(rows, row)
			fmt.Fprintf(out, "%2d replicas, shared %-5v: %d token requests for %d keys (%d cold), %.2f per key per lifetime; first check p50 %s us, max %s us; %d checks, %d errors\n",
				n, shared, row.TokenRequests, row.Keys, row.ColdTokenRequests, row.PerKeyPerLifetime,
				us(time.Duration(row.FirstCheckP50*1e3)), us(time.Duration(row.FirstCheckMax*1e3)), row.Checks, row.Errors)
		}
	}
	lat, err := measureTiers(ctx, stk, rs, o, users[o.xKeys:])
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "one key at a time: fetch p50 %.0f us, second-tier (Redis) hit p50 %.0f us, first-tier hit p50 %.0f us; Redis: %.0f bytes per entry (MEMORY USAGE), %.0f (used_memory delta), access token %d bytes\n",
		lat.FetchP50, lat.SecondTierP50, lat.FirstTierP50, lat.MemoryUsagePerEntry, lat.UsedMemoryPerEntry, lat.AccessTokenLen)
	md := fleetMarkdown(m, o, *replicas, rows, lat)
	if err := report(ctx, out, o.results, o.noWrite, m, "fleet", map[string]any{"rows": rows, "tiers": lat}, md); err != nil {
		return err
	}
	return fleetProblems(rows)
}

// fleetKeys is one CheckRequest per key: cc client-credentials services,
// then one exchange per user.
func fleetKeys(cc int, users []string) []*authv3.CheckRequest {
	var out []*authv3.CheckRequest
	for i := range cc {
		r := checkRequest(users[0], kindClientCredentials, i)
		host := fmt.Sprintf("cc%d.internal", i)
		r.Attributes.Request.Http.Host = host
		r.Attributes.Request.Http.Headers[":authority"] = host
		out = append(out, r)
	}
	for i, u := range users {
		out = append(out, checkRequest(u, kindExchange, i))
	}
	return out
}

func fleetConfigText(grpcAddr, httpAddr, issuer string, o fleetOpts, shared string, cc int) string {
	var svcs strings.Builder
	for i := range cc {
		fmt.Fprintf(&svcs, "  cc%d: {hosts: [cc%d.internal], grant_type: client_credentials, scope: fleet.cc%d}\n", i, i, i)
	}
	extra := ""
	if shared != "" {
		extra = ", shared: " + shared
	}
	return fmt.Sprintf(fleetConfig, grpcAddr, httpAddr, o.skew, o.refreshBefore, extra, issuer, idpClientID, idpClientSecret, svcs.String())
}

// startFleet starts n replicas, with the shared cache or without.
func startFleet(ctx context.Context, stk *stack, rs *redisServer, o fleetOpts, n int, shared bool) ([]*server, []*client, func(), error) {
	block := ""
	if shared {
		if err := rs.Flush(ctx); err != nil {
			return nil, nil, nil, err
		}
		block = rs.block()
	}
	var srvs []*server
	var clients []*client
	stop := func() {
		for _, c := range clients {
			c.Close()
		}
		for _, s := range srvs {
			s.proc.Stop()
		}
	}
	for i := range n {
		s, err := startTokenauthzWith(ctx, stk.bins, fmt.Sprintf("replica-%d", i), procOptions{}, func(g, h string) string {
			return fleetConfigText(g, h, stk.idp.Issuer, o, block, o.ccKeys)
		})
		if err != nil {
			stop()
			return nil, nil, nil, err
		}
		srvs = append(srvs, s)
		c, err := dial(s.grpcAddr, 1)
		if err != nil {
			stop()
			return nil, nil, nil, err
		}
		clients = append(clients, c)
	}
	return srvs, clients, stop, nil
}

// runFleet starts n cold replicas, sends every key's first check to every
// replica at once, then drives all keys over the fleet for the rest of the
// run, and counts the token requests the IdP saw.
func runFleet(ctx context.Context, stk *stack, rs *redisServer, o fleetOpts, n int, shared bool, keys []*authv3.CheckRequest) (fleetRow, error) {
	row := fleetRow{Replicas: n, Shared: shared, Keys: len(keys)}
	_, clients, stop, err := startFleet(ctx, stk, rs, o, n, shared)
	if err != nil {
		return row, err
	}
	defer stop()
	before, err := stk.idp.TokenRequests(ctx)
	if err != nil {
		return row, err
	}
	start := time.Now()
	var mu sync.Mutex
	var lats []time.Duration
	var wg sync.WaitGroup
	for _, req := range keys {
		for _, c := range clients {
			wg.Go(func() {
				t0 := time.Now()
				resp, err := c.stubs[0].Check(ctx, req)
				if err == nil {
					err = okWithHeader(resp)
				}
				mu.Lock()
				defer mu.Unlock()
				lats = append(lats, time.Since(t0))
				if err != nil {
					row.Errors++
					row.FirstError = err.Error()
				}
			})
		}
	}
	wg.Wait()
	row.Checks = int64(len(lats))
	slices.Sort(lats)
	row.FirstCheckP50, row.FirstCheckMax = micros(lats[len(lats)/2]), micros(lats[len(lats)-1])
	cold, err := stk.idp.TokenRequests(ctx)
	if err != nil {
		return row, err
	}
	row.ColdTokenRequests = cold - before

	rest := time.Duration(o.lifetimes)*o.ttl - time.Since(start)
	results := make([]*loadResult, n)
	for i, c := range clients {
		wg.Go(func() {
			results[i] = c.drive(ctx, loadSpec{concurrency: 8, duration: rest, rate: o.rate / float64(n),
				pick: func(j int64, _ time.Duration) *authv3.CheckRequest { return keys[(int(j)+i)%len(keys)] }})
		})
	}
	wg.Wait()
	for _, r := range results {
		row.Checks += r.OK + r.Errors
		row.Errors += r.Errors
		if r.FirstError != "" {
			row.FirstError = r.FirstError
		}
	}
	after, err := stk.idp.TokenRequests(ctx)
	if err != nil {
		return row, err
	}
	row.TokenRequests = after - before
	row.Lifetimes = time.Since(start).Seconds() / o.ttl.Seconds()
	row.PerKeyPerLifetime = float64(row.TokenRequests) / float64(len(keys)) / row.Lifetimes
	return row, ctx.Err()
}
