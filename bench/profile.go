package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// profileCmd takes a CPU profile of tokenauthz and of the floor, each
// under the saturation load of `bench run` (same workload, client,
// connections and GOMAXPROCS), and prints the top of each. tokenauthz
// serves the profile from its admin listener (listen.pprof), the floor
// from --pprof-addr. It is apart from `run` because profiling costs the
// process it profiles.
func profileCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("profile", flag.ContinueOnError)
	duration := fs.Duration("duration", 10*time.Second, "profile length; the load runs a second longer on each side")
	concurrency := fs.Int("concurrency", 50, "checks in flight (closed loop)")
	rate := fs.Float64("rate", 0, "profile an open loop at this many checks per second instead of saturation (200 workers, as run's fixed-rate phase)")
	conns := fs.Int("conns", 2, "HTTP/2 connections from the client to each server")
	users := fs.Int("users", 100, "distinct users")
	gomaxprocs := fs.Int("gomaxprocs", 2, "GOMAXPROCS of both servers")
	serverCPUs := fs.String("server-cpus", "", "pin both servers to these CPUs (taskset -c list); empty: no pinning")
	clientCPUs := fs.String("client-cpus", "", "pin the load generator to these CPUs; empty: no pinning")
	nodes := fs.Int("nodes", 25, "entries of each top")
	keep := fs.String("keep", "", "directory to keep the two .pprof files in (default: dropped)")
	results := fs.String("results", "", "results directory (default bench/results)")
	noWrite := fs.Bool("no-write", false, "print only, store nothing")
	nice := fs.Int("nice", -10, "nice value of the servers, the IdP and the load generator (0: unchanged)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	m := describeMachine(ctx)
	lowerPriority(out, nice)
	// Pinned after lowerPriority, which execs the harness again: a process
	// started pinned would count only the CPUs it was pinned to.
	if err := pinSelf(ctx, *clientCPUs); err != nil {
		return err
	}
	stk, err := startStack(ctx, out, time.Hour)
	if err != nil {
		return err
	}
	defer stk.Close()
	tokens, err := stk.idp.UserTokens(ctx, "user", *users, 2*time.Hour)
	if err != nil {
		return err
	}
	reqs := workload(tokens)
	po := pinnedProcs(*gomaxprocs, *serverCPUs, *clientCPUs)

	taAdmin, err := freeAddr()
	if err != nil {
		return err
	}
	var textErr error
	ta, err := startTokenauthzWith(ctx, stk.bins, "tokenauthz", po, func(grpcAddr, httpAddr string) string {
		var text string
		text, textErr = servingProfiles(configText(grpcAddr, httpAddr, stk.idp.Issuer, defaultCache), taAdmin)
		return text
	})
	if textErr != nil {
		return textErr
	}
	if err != nil {
		return err
	}
	defer ta.proc.Stop()
	flAdmin, err := freeAddr()
	if err != nil {
		return err
	}
	p, err := startPair(ctx, stk.bins, ta, reqs, po, *conns, "--pprof-addr", flAdmin)
	if err != nil {
		return err
	}
	defer p.Close()
	taClient, fl, flClient := p.taClient, p.fl, p.flClient

	dir := *keep
	if dir == "" {
		dir = stk.bins.dir
	}
	var md strings.Builder
	fmt.Fprintf(&md, "# CPU profiles at saturation (`go run ./bench profile`)\n\n%s\n", m.markdown())
	load := fmt.Sprintf("%d checks in flight", *concurrency)
	if *rate > 0 {
		load = fmt.Sprintf("an open loop at %.0f checks/s", *rate)
	}
	fmt.Fprintf(&md, "Each server: %s over %d connections, GOMAXPROCS=%d, servers pinned to CPUs %q, load generator to %q, %d requests (%d users), a %s CPU profile taken 1 s into the load. `flat` is time in the function itself, `cum` with what it calls.\n",
		load, *conns, *gomaxprocs, *serverCPUs, *clientCPUs, len(reqs), *users, *duration)
	for _, t := range []struct {
		s     *server
		c     *client
		admin string
	}{{fl, flClient, flAdmin}, {ta, taClient, taAdmin}} {
		waitQuiet(ctx, 3*time.Minute, []int{stk.idpProc.Pid(), ta.proc.Pid(), fl.proc.Pid()})
		t.c.drive(ctx, loadSpec{concurrency: *concurrency, duration: 2 * time.Second, reqs: reqs})
		file := filepath.Join(dir, t.s.name+".pprof")
		got := make(chan error, 1)
		go func() {
			time.Sleep(time.Second)
			got <- fetchProfile(ctx, "http://"+t.admin+"/debug/pprof/profile?seconds="+fmt.Sprint(int(duration.Seconds())), file)
		}()
		spec := loadSpec{concurrency: *concurrency, duration: *duration + 2*time.Second, reqs: reqs}
		if *rate > 0 {
			spec.concurrency, spec.rate = 200, *rate
		}
		load := t.c.drive(ctx, spec)
		if err := <-got; err != nil {
			return fmt.Errorf("%s profile: %w", t.s.name, err)
		}
		if load.Errors > 0 {
			return fmt.Errorf("%s: %d checks failed under the profile: %s", t.s.name, load.Errors, load.FirstError)
		}
		top, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-cum", "-nodecount", fmt.Sprint(*nodes), file).Output()
		if err != nil {
			return fmt.Errorf("go tool pprof %s: %w", file, err)
		}
		fmt.Fprintf(&md, "\n## %s (%.0f checks/s while profiled)\n\n```\n%s```\n", t.s.name, load.Throughput(), trimTop(string(top)))
	}
	data := map[string]any{"duration": duration.String(), "concurrency": *concurrency, "conns": *conns, "gomaxprocs": *gomaxprocs, "users": *users, "server_cpus": *serverCPUs, "client_cpus": *clientCPUs}
	return report(ctx, out, *results, *noWrite, m, "profile", data, md.String())
}

// servingProfiles is tokenauthz's configuration text with its admin
// listener on addr, serving the profiles.
func servingProfiles(text, addr string) (string, error) {
	const listen = `admin: "127.0.0.1:0"}`
	if !strings.Contains(text, listen) {
		return "", fmt.Errorf("bench config has no %s to serve profiles on", listen)
	}
	return strings.Replace(text, listen, fmt.Sprintf("admin: %q, pprof: true}", addr), 1), nil
}

func fetchProfile(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// trimTop drops pprof's header lines that name temp files and build ids.
func trimTop(top string) string {
	var keep []string
	for line := range strings.SplitAfterSeq(top, "\n") {
		if strings.HasPrefix(line, "File:") || strings.HasPrefix(line, "Build ID:") || strings.HasPrefix(line, "Time:") {
			continue
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, "")
}
