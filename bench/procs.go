package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var errUsage = errors.New("usage")

// binaries are the programs the harness runs as processes, built once per
// command with plain `go build` (same flags for both servers).
type binaries struct {
	dir        string
	tokenauthz string
	bench      string // this program: `floor` and `idp` subcommands
}

// buildBinaries builds tokenauthz and the bench program into a temp dir.
func buildBinaries(ctx context.Context, out io.Writer) (*binaries, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "tokenauthz-bench-")
	if err != nil {
		return nil, err
	}
	b := &binaries{dir: dir, tokenauthz: filepath.Join(dir, "tokenauthz"), bench: filepath.Join(dir, "bench")}
	for _, t := range []struct{ out, pkg string }{{b.tokenauthz, "./cmd/tokenauthz"}, {b.bench, "./bench"}} {
		start := time.Now()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", t.out, t.pkg)
		cmd.Dir = root
		if msg, err := cmd.CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("go build %s: %v\n%s", t.pkg, err, msg)
		}
		fmt.Fprintf(out, "built %s (%s)\n", t.pkg, time.Since(start).Round(100*time.Millisecond))
	}
	return b, nil
}

func (b *binaries) Close() { os.RemoveAll(b.dir) }

func moduleRoot(ctx context.Context) (string, error) {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	p := strings.TrimSpace(string(gomod))
	if p == "" || p == os.DevNull {
		return "", errors.New("not inside the tokenauthz module")
	}
	return filepath.Dir(p), nil
}

// proc is a child process: a server under test or the IdP.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdout *bufio.Reader
	log    string // stderr goes here
}

// pinnedProcs are the servers' options. Children inherit the harness's
// nice value and CPU affinity, so with only the load generator pinned the
// servers are given every CPU back.
func pinnedProcs(gomaxprocs int, serverCPUs, clientCPUs string) procOptions {
	po := procOptions{gomaxprocs: gomaxprocs, cpus: serverCPUs}
	if po.cpus == "" && clientCPUs != "" {
		po.cpus = fmt.Sprintf("0-%d", runtime.NumCPU()-1)
	}
	return po
}

// procOptions are how a child runs: GOMAXPROCS and, with cpus set, pinned
// to those CPUs by taskset.
type procOptions struct {
	gomaxprocs int
	cpus       string // taskset -c list; "" for no pinning
}

func startProc(ctx context.Context, dir, name string, o procOptions, bin string, args ...string) (*proc, error) {
	argv := append([]string{bin}, args...)
	if o.cpus != "" {
		argv = append([]string{"taskset", "-c", o.cpus}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = os.Environ()
	if o.gomaxprocs > 0 {
		cmd.Env = append(cmd.Env, fmt.Sprintf("GOMAXPROCS=%d", o.gomaxprocs))
	}
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stderr = logf
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	logf.Close()
	p := &proc{name: name, cmd: cmd, stdout: bufio.NewReader(pipe), log: logPath}
	context.AfterFunc(ctx, p.Stop)
	return p, nil
}

func (p *proc) Pid() int { return p.cmd.Process.Pid }

// FirstLine is the first line the process prints on stdout.
func (p *proc) FirstLine(timeout time.Duration) (string, error) {
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() { s, err := p.stdout.ReadString('\n'); ch <- res{strings.TrimSpace(s), err} }()
	select {
	case r := <-ch:
		if r.err != nil {
			return "", fmt.Errorf("%s: %w (log: %s)", p.name, r.err, p.tail())
		}
		go io.Copy(io.Discard, p.stdout)
		return r.s, nil
	case <-time.After(timeout):
		return "", fmt.Errorf("%s: no output after %v (log: %s)", p.name, timeout, p.tail())
	}
}

// Stop ends the process: SIGTERM, then SIGKILL after 5s.
func (p *proc) Stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// clkTck is USER_HZ, the unit of utime and stime in /proc/<pid>/stat: 100
// on every Linux architecture Go supports.
const clkTck = 100

// cpuTime is the utime+stime of pid so far (all threads, 10 ms resolution).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after "(comm)": state is field 3, utime 14, stime 15.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * time.Second / clkTck, nil
}

// rssBytes is VmRSS of pid.
func rssBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// freeAddr is a loopback address with a port free right now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// scrape reads a Prometheus text page into name{labels} -> value.
func scrape(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m, sc.Err()
}

// waitOK polls url until it answers 200.
func waitOK(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v (last: %v)", url, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// busyCPU is the CPU time all processes on the machine have used so far
// (user, nice, system, irq, softirq from /proc/stat).
func busyCPU() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected %q", line)
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7} {
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clkTck, nil
}

// cpuMeter tells how much CPU processes other than ours used over a phase:
// on a shared machine, that is what makes a phase noisy.
type cpuMeter struct {
	pids  []int // ours: the harness, the servers, the IdP
	busy  time.Duration
	ours  time.Duration
	start time.Time
}

func newCPUMeter(pids ...int) *cpuMeter {
	m := &cpuMeter{pids: append([]int{os.Getpid()}, pids...)}
	m.busy, m.ours = m.read()
	m.start = time.Now()
	return m
}

func (m *cpuMeter) read() (busy, ours time.Duration) {
	busy, _ = busyCPU()
	for _, pid := range m.pids {
		if t, err := cpuTime(pid); err == nil {
			ours += t
		}
	}
	return busy, ours
}

// Foreign is the CPU used by other processes since newCPUMeter, as a
// percentage of the machine's capacity over that time.
func (m *cpuMeter) Foreign() float64 {
	busy, ours := m.read()
	capacity := time.Since(m.start) * time.Duration(runtime.NumCPU())
	return max(0, 100*float64((busy-m.busy)-(ours-m.ours))/float64(capacity))
}

// niceSelf re-executes this program under `nice -n n`, so that every
// thread of the load generator, and the servers and IdP it starts (they
// inherit it), run at that priority. On a shared machine a negative value
// (root only) keeps other work from disturbing a run as much. It returns
// only on failure, or when already done (n == 0, or after the re-exec).
func niceSelf(n int) error {
	const marker = "TOKENAUTHZ_BENCH_NICE"
	if n == 0 {
		return nil
	}
	if os.Getenv(marker) != "" {
		// With autogroup scheduling (sched_autogroup_enabled), nice only
		// ranks threads within a session; between sessions, the
		// autogroup's own nice value counts. Best effort.
		_ = os.WriteFile("/proc/self/autogroup", []byte(strconv.Itoa(n)), 0)
		return nil
	}
	if n < 0 && os.Geteuid() != 0 {
		return fmt.Errorf("nice %d needs root", n)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	nice, err := exec.LookPath("nice")
	if err != nil {
		return err
	}
	argv := append([]string{"nice", "-n", strconv.Itoa(n), exe}, os.Args[1:]...)
	return syscall.Exec(nice, argv, append(os.Environ(), marker+"="+strconv.Itoa(n)))
}
