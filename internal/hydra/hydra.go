// Package hydra runs a real Ory Hydra (v2.3.0) for tests: in memory, on
// loopback ports, issuing JWT access tokens, behind a reverse proxy that
// counts token requests so tests can assert how often a token was fetched.
//
// The binary comes from scripts/tools.sh (.tools/bin/hydra) or from
// $TOKENAUTHZ_HYDRA. Without it, Start skips the test, or fails it when
// TOKENAUTHZ_E2E=1.
package hydra

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenauthz/tokenauthz/internal/testtools"
)

const (
	readyTimeout = 90 * time.Second // key generation on a loaded 2-core machine can take long
	stopTimeout  = 10 * time.Second
	// startAttempts covers the small window in which another process can
	// take a port between choosing it and Hydra binding it.
	startAttempts = 3
)

// Hydra is a running Hydra with its counting proxy.
type Hydra struct {
	issuer        string // the proxy, with a trailing slash as Hydra reports it
	public        string // Hydra's public port, bypassing the proxy
	admin         string
	http          *http.Client
	tokenRequests atomic.Int64
	byClient      sync.Map // client id (HTTP Basic) -> *atomic.Int64
}

// Options change how Hydra runs; the zero value is Hydra's defaults.
type Options struct {
	// AccessTokenTTL is the lifetime of issued access tokens (Hydra's
	// ttl.access_token, default 1h).
	AccessTokenTTL time.Duration
}

// Start runs `hydra serve all --dev` for the test and stops it in
// t.Cleanup. It returns once Hydra is ready and its signing keys exist, so
// the first token request is as fast as later ones.
func Start(t testing.TB) *Hydra {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith is Start with o.
func StartWith(t testing.TB, o Options) *Hydra {
	t.Helper()
	bin := testtools.Path(t, "hydra", "TOKENAUTHZ_HYDRA")

	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.Proxy = nil // everything is on loopback
	h := &Hydra{http: &http.Client{Transport: transport, Timeout: 10 * time.Second}}
	t.Cleanup(transport.CloseIdleConnections)

	// The proxy starts first: its URL is Hydra's issuer. Its target is set
	// once Hydra's public port is known.
	var target atomic.Pointer[url.URL]
	proxy := httptest.NewServer(h.count(&httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target.Load())
			r.SetXForwarded()
		},
		Transport: transport,
	}))
	t.Cleanup(proxy.Close)
	h.issuer = proxy.URL + "/"

	for attempt := 1; ; attempt++ {
		err := h.launch(t, bin, &target, o)
		if err == nil {
			return h
		}
		if !errors.Is(err, errExited) || attempt == startAttempts {
			t.Fatalf("hydra: %v", err)
		}
		t.Logf("hydra: %v; retrying with other ports", err)
	}
}

// Issuer is the issuer URL, that of the counting proxy, e.g.
// "http://127.0.0.1:40123/". Discovery and the token endpoint work
// through it.
func (h *Hydra) Issuer() string { return h.issuer }

var errExited = errors.New("exited")

// launch starts Hydra on fresh ports and waits until it is ready. It
// returns an error wrapping errExited when Hydra stopped by itself, the
// usual sign of a port taken meanwhile.
func (h *Hydra) launch(t testing.TB, bin string, target *atomic.Pointer[url.URL], o Options) error {
	t.Helper()
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	h.public = "http://127.0.0.1:" + strconv.Itoa(ports[0])
	h.admin = "http://127.0.0.1:" + strconv.Itoa(ports[1])
	publicURL, err := url.Parse(h.public)
	if err != nil {
		return err
	}
	target.Store(publicURL)

	logPath := filepath.Join(t.TempDir(), "hydra.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "serve", "all", "--dev", "--sqa-opt-out")
	cmd.Env = append(os.Environ(),
		"DSN=memory",
		"SECRETS_SYSTEM="+randomHex(t, 32),
		"URLS_SELF_ISSUER="+h.issuer,
		"STRATEGIES_ACCESS_TOKEN=jwt",
		"SERVE_PUBLIC_HOST=127.0.0.1",
		"SERVE_PUBLIC_PORT="+strconv.Itoa(ports[0]),
		"SERVE_ADMIN_HOST=127.0.0.1",
		"SERVE_ADMIN_PORT="+strconv.Itoa(ports[1]),
	)
	if o.AccessTokenTTL > 0 {
		cmd.Env = append(cmd.Env, "TTL_ACCESS_TOKEN="+o.AccessTokenTTL.String())
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start %s: %w", bin, err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()

	stop := func() {
		if err := killGroup(cmd.Process); err != nil {
			t.Logf("hydra: kill: %v", err)
		}
		select {
		case <-done:
		case <-time.After(stopTimeout):
			t.Errorf("hydra: pid %d still running %v after SIGKILL", cmd.Process.Pid, stopTimeout)
		}
		logFile.Close()
	}

	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := h.waitReady(ctx, done); err != nil {
		stop()
		if errors.Is(err, errExited) {
			err = fmt.Errorf("%w before it was ready: %v", err, waitErr)
		}
		t.Logf("hydra log, migrations left out:\n%s", readLog(logPath))
		return err
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("hydra log, migrations left out:\n%s", readLog(logPath))
		}
	})
	return nil
}

// waitReady polls both health endpoints, then fetches the JWKS from the
// public port directly: Hydra makes its RSA signing keys on first use,
// which takes about a second, and this keeps that out of the tests' token
// requests and out of the proxy's count.
func (h *Hydra) waitReady(ctx context.Context, exited <-chan struct{}) error {
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for _, u := range []string{h.admin + "/health/ready", h.public + "/health/ready", h.public + "/.well-known/jwks.json"} {
		for {
			err := h.get(ctx, u)
			if err == nil {
				break
			}
			select {
			case <-exited:
				return errExited
			case <-ctx.Done():
				return fmt.Errorf("not ready after %v: %w", readyTimeout, err)
			case <-tick.C:
			}
		}
	}
	return nil
}

func (h *Hydra) get(ctx context.Context, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := h.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return nil
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close() // held until all are chosen, so they differ
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// readLog returns Hydra's log without the hundreds of migration lines.
func readLog(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var b strings.Builder
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if !strings.Contains(sc.Text(), "migration_file=") {
			b.WriteString(sc.Text())
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
