package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/tokenauthz/tokenauthz/internal/testtools"
)

const (
	proxyReadyTimeout = 15 * time.Second
	// proxyStartAttempts covers another process taking the chosen port
	// between our choosing it and the proxy binding it.
	proxyStartAttempts = 3
)

// upstream is a backend on loopback that records the requests it got.
type upstream struct {
	addr string
	mu   sync.Mutex
	seen []*http.Request // headers and URL only
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.seen = append(u.seen, &http.Request{Method: r.Method, URL: r.URL, Host: r.Host, Header: r.Header.Clone()})
		u.mu.Unlock()
		io.WriteString(w, "upstream ok")
	}))
	t.Cleanup(srv.Close)
	u.addr = srv.Listener.Addr().String()
	return u
}

// requests returns how many requests the upstream got, and the last one.
func (u *upstream) requests() (int, *http.Request) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.seen) == 0 {
		return 0, nil
	}
	return len(u.seen), u.seen[len(u.seen)-1]
}

// repoRoot is the module root; tests run in e2e/.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// proxyBinary finds a proxy installed by scripts/tools.sh (see
// testtools.Path); skip, when set, explains why skipping is right even under
// TOKENAUTHZ_E2E=1 (a tool that could not be built here).
func proxyBinary(t *testing.T, name, env string, skip func() string) string {
	t.Helper()
	if _, err := testtools.Find(name, env); err != nil && skip != nil {
		if why := skip(); why != "" {
			t.Skip(why)
		}
	}
	return testtools.Path(t, name, env)
}

// renderTemplate fills the template file src with data into dst.
func renderTemplate(t *testing.T, src, dst string, data any) {
	t.Helper()
	tmpl, err := template.New(filepath.Base(src)).Option("missingkey=error").ParseFiles(src)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := tmpl.Execute(f, data); err != nil {
		t.Fatalf("%s: %v", src, err)
	}
}

// proxyCommand builds the command that runs a proxy listening on
// 127.0.0.1:port, with its files in dir.
type proxyCommand func(t *testing.T, dir string, port int) *exec.Cmd

// startProxy runs a proxy until the test ends and returns its address once
// it accepts connections. It retries on fresh ports when the proxy exits
// early, the usual sign of a port taken meanwhile.
func startProxy(t *testing.T, name string, command proxyCommand) string {
	t.Helper()
	for attempt := 1; ; attempt++ {
		addr, err := launchProxy(t, name, command)
		if err == nil {
			return addr
		}
		if !errors.Is(err, errProxyExited) || attempt == proxyStartAttempts {
			t.Fatalf("%s: %v", name, err)
		}
		t.Logf("%s: %v; retrying on another port", name, err)
	}
}

var errProxyExited = errors.New("exited")

func launchProxy(t *testing.T, name string, command proxyCommand) (string, error) {
	dir := t.TempDir()
	port := freePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	logPath := filepath.Join(dir, name+".out")
	logFile, err := os.Create(logPath)
	if err != nil {
		return "", err
	}
	defer logFile.Close()
	cmd := command(t, dir, port)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = proxySysProcAttr()
	if err := cmd.Start(); err != nil {
		return "", err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		if err := killProxyGroup(cmd.Process); err != nil {
			t.Errorf("%s: stop: %v", name, err)
		}
		<-exited
	})
	logs := func() string { b, _ := os.ReadFile(logPath); return strings.TrimSpace(string(b)) }
	deadline := time.Now().Add(proxyReadyTimeout)
	for {
		select {
		case <-exited:
			return "", fmt.Errorf("%w before listening on %s: %s", errProxyExited, addr, logs())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return addr, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("not listening on %s after %v: %s", addr, proxyReadyTimeout, logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freePort is a loopback port free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
