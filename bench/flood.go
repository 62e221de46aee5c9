package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tokenauthz/tokenauthz/internal/slowidp"
)

// floodConfig: one client-credentials service and one token-exchange
// service on the slow IdP; the cache is set so that the client-credentials
// token is refreshed while the flood runs.
const floodConfig = `listen: {grpc: %q, http: %q, admin: "127.0.0.1:0"}
cache: {expiry_skew: 1s, refresh_before: %s}
token_request: {timeout: 3s%s}
defaults: {token_url: %s, client_id: bench, client_secret: bench-secret}
services:
  cc: {hosts: [cc.internal], grant_type: client_credentials}
  exchange: {hosts: [exchange.internal], grant_type: token_exchange}
`

// floodSample is what tokenauthz and the IdP looked like at one moment.
type floodSample struct {
	IdPInFlight int64 `json:"idp_in_flight"`
	IdPConns    int64 `json:"idp_open_connections"`
	TimeWait    int   `json:"time_wait_sockets"`
	Goroutines  int64 `json:"tokenauthz_goroutines"`
	RSS         int64 `json:"tokenauthz_rss_bytes"`
}

// floodResult is what `bench flood` found.
type floodResult struct {
	Attackers       int              `json:"concurrent_attackers"`
	Latency         string           `json:"idp_latency"`
	Deadline        string           `json:"check_deadline"`
	MaxInFlight     int              `json:"max_in_flight_setting"`
	FloodChecks     int64            `json:"flood_checks"`
	FloodByReason   map[string]int64 `json:"flood_checks_by_reason"`
	IdPRefused      int64            `json:"idp_exchanges_refused"`
	Before          floodSample      `json:"before"`
	Peak            floodSample      `json:"peak_during"`
	After           floodSample      `json:"after"`
	CCChecks        int64            `json:"cc_checks_during"`
	CCFailures      int64            `json:"cc_failures_during"`
	CCFetches       int64            `json:"cc_token_requests_during"`
	NewUserMillis   float64          `json:"new_user_exchange_ms_after"`
	NewUserAllowed  bool             `json:"new_user_allowed_after"`
	SettleSeconds   float64          `json:"settle_seconds"`
	FloodSeconds    float64          `json:"flood_seconds"`
	IdPPeakInFlight int64            `json:"idp_peak_in_flight"`
	IdPPeakConns    int64            `json:"idp_peak_open_connections"`
}

// floodCmd floods a token-exchange route with distinct bogus bearer tokens
// against a slow IdP, while a client-credentials route keeps being checked,
// and reports what the flood cost: requests and connections at the IdP,
// TIME_WAIT sockets, tokenauthz's goroutines and RSS, during and after.
func floodCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("flood", flag.ContinueOnError)
	attackers := fs.Int("attackers", 3000, "concurrent checks, each with a new bogus bearer token")
	duration := fs.Duration("duration", 6*time.Second, "how long the flood lasts")
	latency := fs.Duration("latency", 1500*time.Millisecond, "the IdP's answer time")
	deadline := fs.Duration("deadline", time.Second, "each check's deadline (Envoy's ext_authz timeout)")
	maxInFlight := fs.Int("max-in-flight", 0, "token_request.max_in_flight (0: the default)")
	ttl := fs.Duration("ttl", 6*time.Second, "lifetime of client-credentials tokens")
	conns := fs.Int("conns", 8, "gRPC connections to tokenauthz")
	results := fs.String("results", "", "results directory (default bench/results)")
	noWrite := fs.Bool("no-write", false, "print only, store nothing")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	m := describeMachine(ctx)
	bins, err := buildBinaries(ctx, out)
	if err != nil {
		return err
	}
	defer bins.Close()
	idp, err := slowidp.Start(*latency, *ttl)
	if err != nil {
		return err
	}
	defer idp.Close()
	srv, err := startFloodTarget(ctx, bins, idp, *ttl/2, *maxInFlight)
	if err != nil {
		return err
	}
	defer srv.proc.Stop()
	c, err := dial(srv.grpcAddr, *conns)
	if err != nil {
		return err
	}
	defer c.Close()
	ccReq := floodRequest("cc.internal", "")
	if r := checkOnce(ctx, c, ccReq, 10*time.Second); r != "allow" {
		return fmt.Errorf("warming the client-credentials token: %s", r)
	}
	sampleOf := func() floodSample { return sampleFlood(ctx, idp, srv) }
	res := floodResult{Attackers: *attackers, Latency: latency.String(), Deadline: deadline.String(),
		MaxInFlight: *maxInFlight, FloodByReason: map[string]int64{}, Before: sampleOf()}
	fmt.Fprintf(out, "flood: %d concurrent bogus tokens for %s, IdP answering in %s, check deadline %s\n",
		*attackers, *duration, *latency, *deadline)

	ccBefore := idp.Counts().ClientCredentials
	floodCtx, stopFlood := context.WithTimeout(ctx, *duration)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var total, ccChecks, ccFails atomic.Int64
	start := time.Now()
	for a := range *attackers {
		wg.Go(func() {
			byReason := map[string]int64{}
			for i := 0; floodCtx.Err() == nil; i++ {
				req := floodRequest("exchange.internal", fmt.Sprintf("bogus-%d-%d", a, i))
				byReason[checkOnceStub(ctx, c, a, req, *deadline)]++
				total.Add(1)
			}
			mu.Lock()
			for k, v := range byReason {
				res.FloodByReason[k] += v
			}
			mu.Unlock()
		})
	}
	wg.Go(func() { // the legitimate client-credentials traffic
		for floodCtx.Err() == nil {
			ccChecks.Add(1)
			if checkOnce(ctx, c, ccReq, *deadline) != "allow" {
				ccFails.Add(1)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	wg.Go(func() { // the sampler
		for floodCtx.Err() == nil {
			res.Peak = res.Peak.max(sampleOf())
			time.Sleep(200 * time.Millisecond)
		}
	})
	wg.Wait()
	stopFlood()
	res.FloodSeconds = time.Since(start).Seconds()
	res.FloodChecks, res.CCChecks, res.CCFailures = total.Load(), ccChecks.Load(), ccFails.Load()
	res.CCFetches = idp.Counts().ClientCredentials - ccBefore

	// After: let the token requests the flood started finish, then look again.
	settle := time.Now()
	for idp.Counts().InFlight > 0 && time.Since(settle) < 30*time.Second {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(5 * time.Second)
	res.SettleSeconds = time.Since(settle).Seconds()
	res.After = sampleOf()
	t0 := time.Now()
	res.NewUserAllowed = checkOnce(ctx, c, floodRequest("exchange.internal", "user-legit-1"), 10*time.Second) == "allow"
	res.NewUserMillis = float64(time.Since(t0).Microseconds()) / 1000
	final := idp.Counts()
	res.IdPRefused, res.IdPPeakInFlight, res.IdPPeakConns = final.Refused, final.PeakInFlight, final.PeakOpen
	if err := report(ctx, out, *results, *noWrite, m, "flood", res, floodMarkdown(m, res)); err != nil {
		return err
	}
	if res.CCFailures > 0 || !res.NewUserAllowed {
		return fmt.Errorf("legitimate checks failed: %d of %d client-credentials checks during the flood; new user after it allowed: %v",
			res.CCFailures, res.CCChecks, res.NewUserAllowed)
	}
	return nil
}

func startFloodTarget(ctx context.Context, bins *binaries, idp *slowidp.IdP, refreshBefore time.Duration, maxInFlight int) (*server, error) {
	extra := ""
	if maxInFlight > 0 {
		extra = fmt.Sprintf(", max_in_flight: %d", maxInFlight)
	}
	return startTokenauthzWith(ctx, bins, "flood", procOptions{}, func(grpcAddr, httpAddr string) string {
		return fmt.Sprintf(floodConfig, grpcAddr, httpAddr, refreshBefore, extra, idp.TokenURL())
	})
}

func floodRequest(host, bearer string) *authv3.CheckRequest {
	headers := map[string]string{":authority": host, ":method": "GET", ":path": "/", "x-request-id": "flood"}
	if bearer != "" {
		headers["authorization"] = "Bearer " + bearer
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Host: host, Path: "/", Headers: headers},
	}}}
}

func checkOnce(ctx context.Context, c *client, req *authv3.CheckRequest, timeout time.Duration) string {
	return checkOnceStub(ctx, c, 0, req, timeout)
}

// checkOnceStub sends req on connection i and names the outcome: "allow",
// the denial's reason, or "grpc:<code>" when the call itself failed.
func checkOnceStub(ctx context.Context, c *client, i int, req *authv3.CheckRequest, timeout time.Duration) string {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := c.stubs[i%len(c.stubs)].Check(cctx, req)
	if err != nil {
		return "grpc:" + strings.ToLower(status.Code(err).String())
	}
	if codes.Code(resp.GetStatus().GetCode()) == codes.OK {
		return "allow"
	}
	var body struct{ Error string }
	json.Unmarshal([]byte(resp.GetDeniedResponse().GetBody()), &body)
	return body.Error
}

func sampleFlood(ctx context.Context, idp *slowidp.IdP, srv *server) floodSample {
	c := idp.Counts()
	s := floodSample{IdPInFlight: c.InFlight, IdPConns: c.Open, TimeWait: timeWait(idp.Addr())}
	if m, err := scrape(ctx, "http://"+srv.httpAddr+"/metrics"); err == nil {
		s.Goroutines = int64(m["go_goroutines"])
	}
	s.RSS, _ = rssBytes(srv.proc.Pid())
	return s
}

func (s floodSample) max(o floodSample) floodSample {
	return floodSample{IdPInFlight: max(s.IdPInFlight, o.IdPInFlight), IdPConns: max(s.IdPConns, o.IdPConns),
		TimeWait: max(s.TimeWait, o.TimeWait), Goroutines: max(s.Goroutines, o.Goroutines), RSS: max(s.RSS, o.RSS)}
}

// timeWait counts loopback TCP sockets in TIME_WAIT to or from addr's port
// (/proc/net/tcp: state 06; addresses are hex ip:port).
func timeWait(addr string) int {
	_, port, _ := strings.Cut(addr, ":")
	p, _ := strconv.Atoi(port)
	hexPort := fmt.Sprintf(":%04X", p)
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return -1
	}
	n := 0
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) > 3 && f[3] == "06" && (strings.HasSuffix(f[1], hexPort) || strings.HasSuffix(f[2], hexPort)) {
			n++
		}
	}
	return n
}

func floodMarkdown(m machine, r floodResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# tokenauthz under a flood of bogus bearer tokens\n\n%s\n", m.markdown())
	setting := "default"
	if r.MaxInFlight > 0 {
		setting = fmt.Sprint(r.MaxInFlight)
	}
	fmt.Fprintf(&b, "%d concurrent checks on a token-exchange route, each with a new bogus bearer token, for %.1f s; the IdP answers every token request after %s (invalid_grant for the bogus ones); each check's deadline %s; token_request.max_in_flight %s.\n\n",
		r.Attackers, r.FloodSeconds, r.Latency, r.Deadline, setting)
	fmt.Fprintf(&b, "| | before | peak during | after (%.0f s later) |\n|---|---|---|---|\n", r.SettleSeconds)
	row := func(name string, f func(floodSample) string) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", name, f(r.Before), f(r.Peak), f(r.After))
	}
	row("token requests in flight at the IdP", func(s floodSample) string { return fmt.Sprint(s.IdPInFlight) })
	row("open connections to the IdP", func(s floodSample) string { return fmt.Sprint(s.IdPConns) })
	row("sockets in TIME_WAIT on the IdP port", func(s floodSample) string { return fmt.Sprint(s.TimeWait) })
	row("tokenauthz goroutines", func(s floodSample) string { return fmt.Sprint(s.Goroutines) })
	row("tokenauthz RSS (MiB)", func(s floodSample) string { return mib(s.RSS) })
	fmt.Fprintf(&b, "\nPeaks seen by the IdP itself: %d requests in flight, %d open connections.\n\n", r.IdPPeakInFlight, r.IdPPeakConns)
	fmt.Fprintf(&b, "Flood checks: %d, by outcome:", r.FloodChecks)
	for _, k := range slices.Sorted(maps.Keys(r.FloodByReason)) {
		fmt.Fprintf(&b, " %s %d;", k, r.FloodByReason[k])
	}
	fmt.Fprintf(&b, " bogus tokens the IdP was asked about: %d.\n\n", r.IdPRefused)
	fmt.Fprintf(&b, "Client-credentials route during the flood: %d checks, %d failed, %d token requests (refreshes).\n\n", r.CCChecks, r.CCFailures, r.CCFetches)
	fmt.Fprintf(&b, "A new user after the flood: allowed %v, in %.0f ms.\n", r.NewUserAllowed, r.NewUserMillis)
	return b.String()
}
