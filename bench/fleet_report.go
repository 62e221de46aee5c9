package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// measureTiers times, one key at a time on two replicas sharing Redis, the
// check that fetches (replica 0), the same key on replica 1 (a second-tier
// hit: its cache misses, Redis answers) and again there (a first-tier
// hit); then it reads what the entries cost Redis.
func measureTiers(ctx context.Context, stk *stack, rs *redisServer, o fleetOpts, users []string) (tierLatency, error) {
	lat := tierLatency{Keys: len(users)}
	_, clients, stop, err := startFleet(ctx, stk, rs, o, 2, true)
	if err != nil {
		return lat, err
	}
	defer stop()
	used0, err := rs.UsedMemory(ctx)
	if err != nil {
		return lat, err
	}
	var fetch, second, first []time.Duration
	for i, u := range users {
		req := checkRequest(u, kindExchange, 100000+i)
		for _, step := range []struct {
			c   *client
			out *[]time.Duration
		}{{clients[0], &fetch}, {clients[1], &second}, {clients[1], &first}} {
			t0 := time.Now()
			resp, err := step.c.stubs[0].Check(ctx, req)
			d := time.Since(t0)
			if err == nil {
				err = okWithHeader(resp)
			}
			if err != nil {
				return lat, fmt.Errorf("tier latency check: %w", err)
			}
			*step.out = append(*step.out, d)
			lat.AccessTokenLen = len(resp.GetOkResponse().GetHeaders()[0].GetHeader().GetValue()) - len("Bearer ")
		}
	}
	lat.FetchP50, lat.SecondTierP50, lat.FirstTierP50 = p50(fetch), p50(second), p50(first)
	used1, err := rs.UsedMemory(ctx)
	if err != nil {
		return lat, err
	}
	if lat.MemoryUsagePerEntry, lat.RedisEntries, err = rs.BytesPerEntry(ctx); err != nil {
		return lat, err
	}
	if lat.RedisEntries > 0 {
		lat.UsedMemoryPerEntry = float64(used1-used0) / float64(lat.RedisEntries)
	}
	return lat, nil
}

func p50(ds []time.Duration) float64 {
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return micros(ds[len(ds)/2])
}

// fleetProblems are the correctness failures of a fleet run: failed
// checks; with sharing, a cold start that cost more than one token request
// per key, or a fleet that asks more often per key than one replica does.
func fleetProblems(rows []fleetRow) error {
	var problems []string
	var one *fleetRow
	for i, r := range rows {
		if r.Shared && (one == nil || r.Replicas < one.Replicas) {
			one = &rows[i]
		}
	}
	for _, r := range rows {
		if r.Errors > 0 {
			problems = append(problems, fmt.Sprintf("%d replicas, shared %v: %d of %d checks failed (%s)", r.Replicas, r.Shared, r.Errors, r.Checks, r.FirstError))
		}
		if !r.Shared {
			continue
		}
		if r.ColdTokenRequests != r.Keys {
			problems = append(problems, fmt.Sprintf("%d replicas sharing: %d token requests for %d cold keys, want %d", r.Replicas, r.ColdTokenRequests, r.Keys, r.Keys))
		}
		if r.PerKeyPerLifetime > one.PerKeyPerLifetime*1.25+0.1 {
			problems = append(problems, fmt.Sprintf("%d replicas sharing: %.2f token requests per key per lifetime, %d replica: %.2f", r.Replicas, r.PerKeyPerLifetime, one.Replicas, one.PerKeyPerLifetime))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

func fleetMarkdown(m machine, o fleetOpts, replicas string, rows []fleetRow, lat tierLatency) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Fleet: `go run ./bench fleet --replicas %s --cc-keys %d --exchange-keys %d --ttl %v --lifetimes %d --rate %.0f`\n\n",
		replicas, o.ccKeys, o.xKeys, o.ttl, o.lifetimes, o.rate)
	b.WriteString(m.markdown())
	fmt.Fprintf(&b, "\nEach run starts the replicas cold (separate tokenauthz processes; with sharing, one Redis, emptied first), sends every key's first check to every replica at once, then drives all %d keys (%d client credentials, %d token exchange) round-robin over the replicas at %.0f checks/s until %d token lifetimes (%v each; expiry_skew %v, refresh_before %v) have passed. The IdP counts every token request.\n\n",
		o.ccKeys+o.xKeys, o.ccKeys, o.xKeys, o.rate, o.lifetimes, o.ttl, o.skew, o.refreshBefore)
	b.WriteString("| replicas | token requests per key per lifetime: in-process only | with the shared cache | cold start, token requests: in-process only | shared | first check after a cold start p50 / max: in-process only | shared | checks (errors) |\n|---|---|---|---|---|---|---|---|\n")
	byN := map[int][2]fleetRow{}
	var ns []int
	for _, r := range rows {
		pair, seen := byN[r.Replicas]
		if !seen {
			ns = append(ns, r.Replicas)
		}
		if r.Shared {
			pair[1] = r
		} else {
			pair[0] = r
		}
		byN[r.Replicas] = pair
	}
	for _, n := range ns {
		a, s := byN[n][0], byN[n][1]
		fmt.Fprintf(&b, "| %d | %.2f (%d in %.1f lifetimes) | %.2f (%d) | %d | %d | %.0f / %.0f us | %.0f / %.0f us | %d (%d) |\n", n,
			a.PerKeyPerLifetime, a.TokenRequests, a.Lifetimes, s.PerKeyPerLifetime, s.TokenRequests,
			a.ColdTokenRequests, s.ColdTokenRequests, a.FirstCheckP50, a.FirstCheckMax, s.FirstCheckP50, s.FirstCheckMax,
			a.Checks+s.Checks, a.Errors+s.Errors)
	}
	fmt.Fprintf(&b, "\nOne key at a time, %d token-exchange keys, two replicas sharing Redis, latency as the client sees it (gRPC over loopback included):\n\n", lat.Keys)
	b.WriteString("| check | p50 |\n|---|---|\n")
	fmt.Fprintf(&b, "| miss everywhere: Redis read, lock, token request, Redis write | %.0f us |\n", lat.FetchP50)
	fmt.Fprintf(&b, "| second-tier hit: another replica's first check, answered from Redis | %.0f us |\n", lat.SecondTierP50)
	fmt.Fprintf(&b, "| first-tier hit: the same check again | %.0f us |\n", lat.FirstTierP50)
	fmt.Fprintf(&b, "\nRedis memory per cached entry (%d entries, access tokens of %d bytes): %.0f bytes by `MEMORY USAGE`, %.0f bytes by the `used_memory` delta.\n",
		lat.RedisEntries, lat.AccessTokenLen, lat.MemoryUsagePerEntry, lat.UsedMemoryPerEntry)
	return b.String()
}
