package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// runOpts are the flags of `bench run`.
type runOpts struct {
	rounds      int
	duration    time.Duration // each measured phase
	warmup      time.Duration // unmeasured load before each server's phases
	rate        float64
	concurrency int
	openWorkers int
	conns       int
	users       int
	gomaxprocs  int
	serverCPUs  string
	clientCPUs  string
	results     string
	noWrite     bool
	nice        int
	quiet       time.Duration // wait up to this long for other processes to go idle before a phase
	shared      bool          // tokenauthz configured with the shared cache (a Redis the harness starts)
}

// measurement is one server's figures in one round.
type measurement struct {
	Server string `json:"server"`
	Round  int    `json:"round"`
	// Saturation: closed loop at fixed concurrency.
	SatChecks     int64   `json:"sat_checks"`
	SatThroughput float64 `json:"sat_checks_per_s"`
	SatCPUPer     float64 `json:"sat_cpu_us_per_check"`
	// Fixed rate: open loop.
	RateChecks   int64   `json:"rate_checks"`
	RateAchieved float64 `json:"rate_checks_per_s"`
	RateCPUPer   float64 `json:"rate_cpu_us_per_check"`
	P50          float64 `json:"p50_us"`
	P90          float64 `json:"p90_us"`
	P99          float64 `json:"p99_us"`
	P999         float64 `json:"p999_us"`
	SatForeign   float64 `json:"sat_foreign_cpu_pct"`  // CPU used by other processes, % of the machine
	RateForeign  float64 `json:"rate_foreign_cpu_pct"` // the same in the fixed-rate phase
	LateSends    int64   `json:"late_sends"`           // fixed rate: sent > 2ms after schedule (timed from schedule)
	RSS          int64   `json:"rss_bytes"`            // max VmRSS seen after a phase
	Errors       int64   `json:"errors"`
	FirstError   string  `json:"first_error,omitempty"`
}

func runCmd(ctx context.Context, args []string, out io.Writer) error {
	var o runOpts
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.IntVar(&o.rounds, "rounds", 4, "rounds; each measures every server once, in alternating order")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of each measured phase")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load before each server's phases")
	fs.Float64Var(&o.rate, "rate", 2000, "fixed-rate phase: checks per second (open loop)")
	fs.IntVar(&o.concurrency, "concurrency", 50, "saturation phase: checks in flight (closed loop)")
	fs.IntVar(&o.openWorkers, "open-workers", 200, "fixed-rate phase: most checks in flight")
	fs.IntVar(&o.conns, "conns", 2, "HTTP/2 connections from the client to each server")
	fs.IntVar(&o.users, "users", 100, "distinct users; the workload is one client-credentials and one exchange request per user")
	fs.IntVar(&o.gomaxprocs, "gomaxprocs", 2, "GOMAXPROCS of both servers")
	fs.StringVar(&o.serverCPUs, "server-cpus", "", "pin both servers to these CPUs (taskset -c list); empty: no pinning")
	fs.StringVar(&o.clientCPUs, "client-cpus", "", "pin the load generator to these CPUs; empty: no pinning")
	fs.StringVar(&o.results, "results", "", "results directory (default bench/results)")
	fs.BoolVar(&o.noWrite, "no-write", false, "print only, store nothing")
	fs.IntVar(&o.nice, "nice", -10, "nice value of the servers, the IdP and the load generator (negative needs root; 0: unchanged)")
	fs.DurationVar(&o.quiet, "wait-quiet", 3*time.Minute, "before each server's phases, wait up to this long until other processes use < 10% of the machine")
	fs.BoolVar(&o.shared, "shared", false, "configure tokenauthz with cache.shared on a Redis the harness starts (measured checks stay first-tier hits)")
	short := fs.Bool("short", false, "CI smoke: 1 round of 1s phases, 10 users, nothing stored")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if *short {
		o.rounds, o.duration, o.warmup, o.rate, o.users, o.noWrite, o.quiet, o.nice = 1, time.Second, 200*time.Millisecond, 300, 10, true, 0, 0
	}
	m := describeMachine(ctx)
	lowerPriority(out, &o.nice)
	// Pinned after lowerPriority, which execs the harness again: a process
	// started pinned would count only the CPUs it was pinned to.
	if err := pinSelf(ctx, o.clientCPUs); err != nil {
		return err
	}
	stk, err := startStack(ctx, out, time.Hour)
	if err != nil {
		return err
	}
	defer stk.Close()
	bins, idp := stk.bins, stk.idp
	users, err := idp.UserTokens(ctx, "user", o.users, 2*time.Hour)
	if err != nil {
		return err
	}
	reqs := workload(users)

	po := pinnedProcs(o.gomaxprocs, o.serverCPUs, o.clientCPUs)
	co := defaultCache
	if o.shared {
		rs, err := startRedis(ctx, bins.dir)
		if err != nil {
			return err
		}
		defer rs.Close()
		co.shared = rs.block()
	}
	ta, err := startTokenauthz(ctx, bins, idp.Issuer, co, po)
	if err != nil {
		return err
	}
	defer ta.proc.Stop()
	p, err := startPair(ctx, bins, ta, reqs, po, o.conns)
	if err != nil {
		return err
	}
	defer p.Close()
	taClient, fl, flClient, valueLen := p.taClient, p.fl, p.flClient, p.valueLen

	before, err := idp.TokenRequests(ctx)
	if err != nil {
		return err
	}
	statsBefore, err := scrape(ctx, "http://"+ta.httpAddr+"/metrics")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "workload: %d requests (%d users x {client credentials, token exchange}), %d headers each, bearer %d bytes; injected header %d bytes\n",
		len(reqs), o.users, len(reqs[0].GetAttributes().GetRequest().GetHttp().GetHeaders()), len(users[0])+len("Bearer "), valueLen)

	type target struct {
		s *server
		c *client
	}
	targets := []target{{fl, flClient}, {ta, taClient}}
	var all []measurement
	for round := range o.rounds {
		order := targets
		if round%2 == 1 {
			order = []target{targets[1], targets[0]}
		}
		for _, t := range order {
			meas, err := measure(ctx, o, t.s, t.c, reqs, round+1, stk.idpProc.Pid(), ta.proc.Pid(), fl.proc.Pid())
			if err != nil {
				return err
			}
			all = append(all, meas)
			fmt.Fprintf(out, "round %d %-10s sat %8.0f checks/s %6.1f us CPU/check | rate %6.0f/s %6.1f us CPU/check p50 %6.1f p90 %6.1f p99 %7.1f p99.9 %7.1f us | RSS %s MiB | other CPU %.0f%%/%.0f%% | errors %d\n",
				round+1, meas.Server, meas.SatThroughput, meas.SatCPUPer, meas.RateAchieved, meas.RateCPUPer,
				meas.P50, meas.P90, meas.P99, meas.P999, mib(meas.RSS), meas.SatForeign, meas.RateForeign, meas.Errors)
		}
	}
	after, err := idp.TokenRequests(ctx)
	if err != nil {
		return err
	}
	statsAfter, err := scrape(ctx, "http://"+ta.httpAddr+"/metrics")
	if err != nil {
		return err
	}
	sum := summarize(all)
	hits := statsAfter["tokenauthz_cache_hits_total"] - statsBefore["tokenauthz_cache_hits_total"]
	misses := statsAfter["tokenauthz_cache_misses_total"] - statsBefore["tokenauthz_cache_misses_total"]
	md := runMarkdown(o, m, sum, all, after-before, hits, misses, len(reqs), valueLen, len(users[0])+len("Bearer "))
	data := map[string]any{"options": optsMap(o), "summary": sum, "rounds": all,
		"token_requests_during_phases": after - before, "cache_hits": hits, "cache_misses": misses}
	suffix := ""
	if o.shared {
		suffix = "shared"
	}
	if err := report(ctx, out, o.results, o.noWrite, m, suffix, data, md); err != nil {
		return err
	}
	var errs int64
	for _, meas := range all {
		errs += meas.Errors
	}
	switch {
	case errs > 0:
		return fmt.Errorf("%d checks failed", errs)
	case after != before || misses != 0:
		return fmt.Errorf("measured phases were not all cache hits: %d token requests, %v misses", after-before, misses)
	}
	return nil
}

// headerLen is the length of the header value tokenauthz injects; the floor
// injects one as long, so both responses weigh the same.
func headerLen(ctx context.Context, c *client, reqs []*authv3.CheckRequest) (int, error) {
	resp, err := c.stubs[0].Check(ctx, reqs[1])
	if err != nil {
		return 0, err
	}
	if err := okWithHeader(resp); err != nil {
		return 0, err
	}
	return len(resp.GetOkResponse().GetHeaders()[0].GetHeader().GetValue()), nil
}

// measure runs warmup, the saturation phase and the fixed-rate phase
// against one server, reading its CPU time and RSS around each phase.
func measure(ctx context.Context, o runOpts, s *server, c *client, reqs []*authv3.CheckRequest, round int, ours ...int) (measurement, error) {
	meas := measurement{Server: s.name, Round: round}
	pid := s.proc.Pid()
	waitQuiet(ctx, o.quiet, ours)
	c.drive(ctx, loadSpec{concurrency: o.concurrency, duration: o.warmup, reqs: reqs})

	cpu0, err := cpuTime(pid)
	if err != nil {
		return meas, err
	}
	others := newCPUMeter(ours...)
	sat := c.drive(ctx, loadSpec{concurrency: o.concurrency, duration: o.duration, reqs: reqs})
	meas.SatForeign = others.Foreign()
	cpu1, err := cpuTime(pid)
	if err != nil {
		return meas, err
	}
	meas.RSS, _ = rssBytes(pid)
	meas.SatChecks, meas.SatThroughput = sat.OK, sat.Throughput()
	meas.SatCPUPer = perCheck(cpu1-cpu0, sat.OK+sat.Errors)

	time.Sleep(200 * time.Millisecond) // let the saturation backlog drain
	cpu0, err = cpuTime(pid)
	if err != nil {
		return meas, err
	}
	others = newCPUMeter(ours...)
	rate := c.drive(ctx, loadSpec{concurrency: o.openWorkers, duration: o.duration, rate: o.rate, reqs: reqs})
	meas.RateForeign = others.Foreign()
	cpu1, err = cpuTime(pid)
	if err != nil {
		return meas, err
	}
	if rss, _ := rssBytes(pid); rss > meas.RSS {
		meas.RSS = rss
	}
	meas.RateChecks, meas.RateAchieved = rate.OK, rate.Throughput()
	meas.RateCPUPer = perCheck(cpu1-cpu0, rate.OK+rate.Errors)
	meas.P50, meas.P90 = micros(rate.Quantile(.5)), micros(rate.Quantile(.9))
	meas.P99, meas.P999 = micros(rate.Quantile(.99)), micros(rate.Quantile(.999))
	meas.LateSends = rate.Late
	meas.Errors = sat.Errors + rate.Errors
	meas.FirstError = sat.FirstError + rate.FirstError
	return meas, ctx.Err()
}

// waitQuiet waits, up to limit, for a second in which processes other than
// ours use less than 10% of the machine (others share it).
func waitQuiet(ctx context.Context, limit time.Duration, ours []int) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		m := newCPUMeter(ours...)
		time.Sleep(time.Second)
		if m.Foreign() < 10 {
			return
		}
	}
}

func perCheck(cpu time.Duration, checks int64) float64 {
	if checks == 0 {
		return 0
	}
	return micros(cpu) / float64(checks)
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// figures are one server's medians over the rounds.
type figures struct {
	SatThroughput, SatCPUPer, RateCPUPer, P50, P90, P99, P999 float64
	RSS                                                       int64
}

type summary struct {
	Floor      figures            `json:"floor"`
	Tokenauthz figures            `json:"tokenauthz"`
	Ratios     map[string]float64 `json:"ratios_tokenauthz_over_floor"`
	// Spread is the lowest and highest ratio of single rounds (those the
	// medians are taken over).
	Spread map[string][2]float64 `json:"ratio_range_over_rounds"`
}

// busyRound is when other processes used more than this share of the
// machine (%) during a phase: such rounds are left out of the summary if
// clean ones exist for both servers.
const busyRound = 10.0

func (m measurement) clean() bool { return m.SatForeign <= busyRound && m.RateForeign <= busyRound }

func summarize(all []measurement) summary {
	useClean := 0
	for _, m := range all {
		if m.clean() && m.Server == "floor" {
			useClean |= 1
		}
		if m.clean() && m.Server == "tokenauthz" {
			useClean |= 2
		}
	}
	pick := func(server string) figures {
		var ms []measurement
		for _, m := range all {
			if m.Server == server && (useClean != 3 || m.clean()) {
				ms = append(ms, m)
			}
		}
		med := func(f func(measurement) float64) float64 {
			vs := make([]float64, len(ms))
			for i, m := range ms {
				vs[i] = f(m)
			}
			return median(vs)
		}
		return figures{
			SatThroughput: med(func(m measurement) float64 { return m.SatThroughput }),
			SatCPUPer:     med(func(m measurement) float64 { return m.SatCPUPer }),
			RateCPUPer:    med(func(m measurement) float64 { return m.RateCPUPer }),
			P50:           med(func(m measurement) float64 { return m.P50 }),
			P90:           med(func(m measurement) float64 { return m.P90 }),
			P99:           med(func(m measurement) float64 { return m.P99 }),
			P999:          med(func(m measurement) float64 { return m.P999 }),
			RSS:           int64(med(func(m measurement) float64 { return float64(m.RSS) })),
		}
	}
	s := summary{Floor: pick("floor"), Tokenauthz: pick("tokenauthz"), Spread: map[string][2]float64{}}
	s.Ratios = ratios(s.Floor, s.Tokenauthz)
	for _, fm := range all {
		for _, tm := range all {
			if fm.Round != tm.Round || fm.Server != "floor" || tm.Server != "tokenauthz" || useClean == 3 && !(fm.clean() && tm.clean()) {
				continue
			}
			for k, r := range ratios(fm.figures(), tm.figures()) {
				lo, ok := s.Spread[k]
				if !ok {
					lo = [2]float64{r, r}
				}
				s.Spread[k] = [2]float64{min(lo[0], r), max(lo[1], r)}
			}
		}
	}
	return s
}

// ratios are tokenauthz's figures over the floor's.
func ratios(f, t figures) map[string]float64 {
	return map[string]float64{
		"cpu_per_check_fixed_rate": t.RateCPUPer / f.RateCPUPer,
		"cpu_per_check_saturation": t.SatCPUPer / f.SatCPUPer,
		"throughput_saturation":    t.SatThroughput / f.SatThroughput,
		"p50":                      t.P50 / f.P50,
		"p90":                      t.P90 / f.P90,
		"p99":                      t.P99 / f.P99,
		"p99.9":                    t.P999 / f.P999,
		"rss":                      float64(t.RSS) / float64(f.RSS),
	}
}

// figures are one round's figures of m.
func (m measurement) figures() figures {
	return figures{SatThroughput: m.SatThroughput, SatCPUPer: m.SatCPUPer, RateCPUPer: m.RateCPUPer,
		P50: m.P50, P90: m.P90, P99: m.P99, P999: m.P999, RSS: m.RSS}
}

func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	vs = slices.Clone(vs)
	slices.Sort(vs)
	if n := len(vs); n%2 == 0 {
		return (vs[n/2-1] + vs[n/2]) / 2
	}
	return vs[len(vs)/2]
}

func optsMap(o runOpts) map[string]any {
	return map[string]any{
		"rounds": o.rounds, "phase": o.duration.String(), "warmup": o.warmup.String(), "rate": o.rate,
		"concurrency": o.concurrency, "open_workers": o.openWorkers, "conns": o.conns, "users": o.users,
		"gomaxprocs": o.gomaxprocs, "nice": o.nice, "server_cpus": o.serverCPUs, "client_cpus": o.clientCPUs, "shared": o.shared,
	}
}

func runMarkdown(o runOpts, m machine, s summary, all []measurement, tokenReqs int, hits, misses float64, nreqs, valueLen, bearerLen int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# tokenauthz vs the floor: `go run ./bench run %s`\n\n", argsString(o))
	b.WriteString(m.markdown())
	fmt.Fprintf(&b, "\nWorkload: %d distinct CheckRequests (%d users x {client credentials GET /v1/orders/<n>, token exchange GET /v1/orders/history}), 14 headers each, bearer `Authorization` %d bytes; both servers inject one header of %d bytes. Servers: separate processes, GOMAXPROCS=%d, nice %d (load generator and IdP too), pinned to CPUs %q; load generator pinned to %q. %d connections. Saturation: %d checks in flight, closed loop, %v. Fixed rate: %.0f checks/s open loop (latency from the scheduled send time), %v. Warm-up %v per server per round. Figures are medians over %d rounds (servers alternate order each round), leaving out rounds where other processes used more than 10%% of the machine when clean rounds exist for both servers. The machine is shared: before each server's phases the harness waits (up to --wait-quiet) for other processes to go idle, and \"other CPU\" below is what other processes used during each phase, in %% of the machine.\n\n",
		nreqs, o.users, bearerLen, valueLen, o.gomaxprocs, o.nice, o.serverCPUs, o.clientCPUs, o.conns, o.concurrency, o.duration, o.rate, o.duration, o.warmup, o.rounds)
	b.WriteString("| figure | floor | tokenauthz | ratio | ratio in single rounds | target |\n|---|---|---|---|---|---|\n")
	row := func(name string, f, t float64, unit, key string, target string) {
		sp := s.Spread[key]
		fmt.Fprintf(&b, "| %s | %.1f %s | %.1f %s | %.2fx | %.2fx to %.2fx | %s |\n", name, f, unit, t, unit, s.Ratios[key], sp[0], sp[1], target)
	}
	r := s.Ratios
	row("CPU per check, fixed rate", s.Floor.RateCPUPer, s.Tokenauthz.RateCPUPer, "us", "cpu_per_check_fixed_rate", verdict(r["cpu_per_check_fixed_rate"] <= 0.75, "<= 0.75x"))
	row("CPU per check, saturation", s.Floor.SatCPUPer, s.Tokenauthz.SatCPUPer, "us", "cpu_per_check_saturation", verdict(r["cpu_per_check_saturation"] <= 0.75, "<= 0.75x"))
	row("throughput at saturation", s.Floor.SatThroughput, s.Tokenauthz.SatThroughput, "checks/s", "throughput_saturation", verdict(r["throughput_saturation"] >= 0.85, ">= 0.85x"))
	row("p50 at fixed rate", s.Floor.P50, s.Tokenauthz.P50, "us", "p50", verdict(r["p50"] <= 1.0, "<= 1.0x"))
	row("p90 at fixed rate", s.Floor.P90, s.Tokenauthz.P90, "us", "p90", verdict(r["p90"] <= 1.2, "<= 1.2x"))
	row("p99 at fixed rate", s.Floor.P99, s.Tokenauthz.P99, "us", "p99", verdict(r["p99"] <= 1.0, "<= 1.0x"))
	row("p99.9 at fixed rate", s.Floor.P999, s.Tokenauthz.P999, "us", "p99.9", "reported, not gated")
	row("RSS (max after a phase)", float64(s.Floor.RSS)/(1<<20), float64(s.Tokenauthz.RSS)/(1<<20), "MiB", "rss", "reported")
	fmt.Fprintf(&b, "\nDuring the measured phases tokenauthz made %d token requests; its cache counted %.0f hits and %.0f misses.\n", tokenReqs, hits, misses)
	b.WriteString("\n## Every round\n\n| round | server | sat checks/s | sat CPU us/check | rate checks/s | rate CPU us/check | p50 us | p90 us | p99 us | p99.9 us | RSS MiB | late sends | other CPU sat/rate % | errors |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, x := range all {
		fmt.Fprintf(&b, "| %d | %s | %.0f | %.1f | %.0f | %.1f | %.1f | %.1f | %.1f | %.1f | %s | %d | %.1f / %.1f | %d |\n",
			x.Round, x.Server, x.SatThroughput, x.SatCPUPer, x.RateAchieved, x.RateCPUPer, x.P50, x.P90, x.P99, x.P999, mib(x.RSS), x.LateSends, x.SatForeign, x.RateForeign, x.Errors)
	}
	b.WriteString("\n## Ratios by round\n\ntokenauthz / floor within each round (drift between rounds cancels out).\n\n| round | CPU/check sat | CPU/check rate | throughput | p50 | p90 | p99 | clean |\n|---|---|---|---|---|---|---|---|\n")
	for i := range all {
		for j := range all {
			f, t := all[i], all[j]
			if f.Round != t.Round || f.Server != "floor" || t.Server != "tokenauthz" {
				continue
			}
			fmt.Fprintf(&b, "| %d | %.2fx | %.2fx | %.2fx | %.2fx | %.2fx | %.2fx | %v |\n", f.Round,
				t.SatCPUPer/f.SatCPUPer, t.RateCPUPer/f.RateCPUPer, t.SatThroughput/f.SatThroughput,
				t.P50/f.P50, t.P90/f.P90, t.P99/f.P99, f.clean() && t.clean())
		}
	}
	return b.String()
}

func verdict(ok bool, target string) string {
	if ok {
		return target + " met"
	}
	return target + " **missed**"
}

func argsString(o runOpts) string {
	s := fmt.Sprintf("--rounds %d --duration %v --rate %.0f --concurrency %d --conns %d --users %d --gomaxprocs %d --server-cpus %q --client-cpus %q",
		o.rounds, o.duration, o.rate, o.concurrency, o.conns, o.users, o.gomaxprocs, o.serverCPUs, o.clientCPUs)
	if o.shared {
		s += " --shared"
	}
	return s
}
