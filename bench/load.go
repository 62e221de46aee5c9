package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// client is the load generator's side: a few HTTP/2 connections (Envoy
// keeps one per worker thread to the ext_authz cluster) shared by the
// workers round-robin. The same client drives every server.
type client struct {
	conns []*grpc.ClientConn
	stubs []authv3.AuthorizationClient
}

func dial(addr string, conns int) (*client, error) {
	c := &client{}
	for range max(conns, 1) {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			c.Close()
			return nil, err
		}
		c.conns = append(c.conns, cc)
		c.stubs = append(c.stubs, authv3.NewAuthorizationClient(cc))
	}
	return c, nil
}

func (c *client) Close() {
	for _, cc := range c.conns {
		cc.Close()
	}
}

// loadSpec is one load phase. rate 0 is closed loop: concurrency workers
// each send the next request as soon as the last is answered (saturation).
// rate > 0 is open loop: requests are scheduled at fixed intervals; a
// request sent late because every worker was waiting for the server is
// timed from its scheduled send time, so a stalled server shows in the
// figures instead of slowing the client (no coordinated omission).
// concurrency bounds requests in flight and must exceed rate x latency.
//
// Go's timers on Linux wake up to about 1 ms late (the netpoller sleeps in
// whole milliseconds), the same for every server; a request sent less than
// timerSlop late is timed from its actual send, so that this client-side
// delay does not pad every latency and flatten the ratios.
type loadSpec struct {
	concurrency int
	duration    time.Duration
	rate        float64
	timeout     time.Duration // per check, like Envoy's ext_authz timeout; default 1s
	reqs        []*authv3.CheckRequest
	// pick, if set, chooses the i-th request, scheduled at (since the start);
	// otherwise requests cycle through reqs.
	pick  func(i int64, at time.Duration) *authv3.CheckRequest
	check func(*authv3.CheckResponse) error // nil: okWithHeader
}

const timerSlop = 2 * time.Millisecond

// sample is one answered check: when it was scheduled (since the phase
// started) and its latency.
type sample struct{ at, lat time.Duration }

type loadResult struct {
	OK, Errors int64
	Late       int64 // open loop: sent more than timerSlop after schedule
	FirstError string
	Elapsed    time.Duration
	samples    []sample // ordered by latency
}

func (r *loadResult) Throughput() float64 { return float64(r.OK) / r.Elapsed.Seconds() }

// Quantile of latency; 0 when nothing was answered.
func (r *loadResult) Quantile(q float64) time.Duration { return quantile(r.samples, q) }

func quantile(sorted []sample, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)].lat
}

// window is the latency of the checks scheduled within one interval.
type window struct {
	Start              time.Duration
	N                  int
	P50, P99, Max      time.Duration
	TokenRequestsDelta int // filled by the caller when it tracks the IdP
}

// Windows splits the samples by scheduled time into intervals of d.
func (r *loadResult) Windows(d time.Duration) []window {
	byWin := map[int][]sample{}
	last := 0
	for _, s := range r.samples {
		w := int(s.at / d)
		byWin[w] = append(byWin[w], s) // stays ordered by latency
		last = max(last, w)
	}
	out := make([]window, 0, last+1)
	for w := 0; w <= last; w++ {
		ss := byWin[w]
		win := window{Start: time.Duration(w) * d, N: len(ss)}
		if len(ss) > 0 {
			win.P50, win.P99, win.Max = quantile(ss, .5), quantile(ss, .99), ss[len(ss)-1].lat
		}
		out = append(out, win)
	}
	return out
}

// drive runs one phase against c.
func (c *client) drive(ctx context.Context, spec loadSpec) *loadResult {
	if spec.timeout == 0 {
		spec.timeout = time.Second
	}
	if spec.check == nil {
		spec.check = okWithHeader
	}
	var (
		next     atomic.Int64
		ok, errs atomic.Int64
		late     atomic.Int64
		firstErr sync.Once
		res      = &loadResult{}
		mu       sync.Mutex
		stop     atomic.Bool
		wg       sync.WaitGroup
	)
	var total int64 = math.MaxInt64
	interval := 0.0
	if spec.rate > 0 {
		total = int64(spec.duration.Seconds() * spec.rate)
		interval = float64(time.Second) / spec.rate
	}
	start := time.Now()
	// Open loop ends when the schedule is sent; the timer only bounds a stall.
	limit := spec.duration
	if spec.rate > 0 {
		limit += spec.timeout + time.Second
	}
	timer := time.AfterFunc(limit, func() { stop.Store(true) })
	defer timer.Stop()
	for w := range spec.concurrency {
		stub := c.stubs[w%len(c.stubs)]
		wg.Go(func() {
			local := make([]sample, 0, 1024)
			for !stop.Load() && ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= total {
					break
				}
				sched := time.Now()
				if spec.rate > 0 {
					sched = start.Add(time.Duration(float64(i) * interval))
					if d := time.Until(sched); d > 0 {
						time.Sleep(d)
					}
				}
				sent := time.Now()
				from := sent // see timerSlop
				if sent.Sub(sched) > timerSlop {
					from = sched
					late.Add(1)
				}
				var req *authv3.CheckRequest
				if spec.pick != nil {
					req = spec.pick(i, sched.Sub(start))
				} else {
					req = spec.reqs[int(i%int64(len(spec.reqs)))]
				}
				cctx, cancel := context.WithTimeout(ctx, spec.timeout)
				resp, err := stub.Check(cctx, req)
				cancel()
				done := time.Now()
				if err == nil {
					err = spec.check(resp)
				}
				if err != nil {
					errs.Add(1)
					firstErr.Do(func() { res.FirstError = err.Error() })
					continue
				}
				ok.Add(1)
				local = append(local, sample{at: sched.Sub(start), lat: done.Sub(from)})
			}
			mu.Lock()
			res.samples = append(res.samples, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	if spec.rate > 0 { // the schedule's length, not the last straggler's
		res.Elapsed = max(time.Duration(float64(total)*interval), time.Nanosecond)
	}
	res.OK, res.Errors, res.Late = ok.Load(), errs.Load(), late.Load()
	slices.SortFunc(res.samples, func(a, b sample) int { return int(a.lat - b.lat) })
	return res
}

// checkAll sends every request once, concurrently (bounded), and fails on
// the first bad answer: warms a cache, or proves a cold path.
func (c *client) checkAll(ctx context.Context, reqs []*authv3.CheckRequest, concurrency int, timeout time.Duration) error {
	sem := make(chan struct{}, max(concurrency, 1))
	errc := make(chan error, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			resp, err := c.stubs[i%len(c.stubs)].Check(cctx, r)
			if err == nil {
				err = okWithHeader(resp)
			}
			if err != nil {
				errc <- fmt.Errorf("check %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errc)
	return <-errc
}
