// Package redistest runs real Redis servers for tests: standalone, Cluster
// (three masters) and TLS, on free loopback ports, persistence off, in the
// test's temp dir, stopped in t.Cleanup. The binaries are Debian's
// redis-server and redis-cli, which scripts/tools.sh links into .tools/bin
// ($TOKENAUTHZ_REDIS_SERVER and $TOKENAUTHZ_REDIS_CLI override). Without
// them a test skips, or fails when TOKENAUTHZ_E2E=1.
package redistest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenauthz/tokenauthz/internal/testtools"
)

const (
	readyTimeout  = 10 * time.Second
	startAttempts = 3 // a port chosen free can be taken before the server binds it
)

// Options are how a server runs.
type Options struct {
	Password string // requirepass, when set
	TLS      bool   // serve TLS only, with a test CA (Server.CAFile)
	// Cluster makes the server a cluster node (StartCluster sets it).
	cluster bool
}

// Server is a running redis-server.
type Server struct {
	Addr   string // 127.0.0.1:port
	CAFile string // TLS only: the PEM of the CA that signed the server's certificate
	opts   Options
	dir    string
	bin    string
	cli    string
	tls    *tls.Config

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been reaped
}

// Start runs a standalone server for the test.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	s := &Server{
		opts: o, dir: t.TempDir(),
		bin: testtools.Path(t, "redis-server", "TOKENAUTHZ_REDIS_SERVER"),
		cli: testtools.Path(t, "redis-cli", "TOKENAUTHZ_REDIS_CLI"),
	}
	if o.TLS {
		s.CAFile, s.tls = writeTLSFiles(t, s.dir)
	}
	t.Cleanup(s.Kill)
	for attempt := 1; ; attempt++ {
		port, err := freePort(o.cluster)
		if err == nil {
			s.Addr = "127.0.0.1:" + strconv.Itoa(port)
			if err = s.launch(); err == nil {
				return s
			}
		}
		if attempt == startAttempts {
			t.Fatalf("redis-server: %v", err)
		}
		t.Logf("redis-server: %v; retrying on another port", err)
	}
}

// launch starts the server on s.Addr and waits until it answers PING.
func (s *Server) launch() error {
	_, port, _ := net.SplitHostPort(s.Addr)
	args := []string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", s.dir,
		"--logfile", filepath.Join(s.dir, "redis.log"), "--protected-mode", "no", "--daemonize", "no"}
	if s.opts.TLS {
		args = append(args, "--port", "0", "--tls-port", port,
			"--tls-cert-file", filepath.Join(s.dir, "server.pem"), "--tls-key-file", filepath.Join(s.dir, "server-key.pem"),
			"--tls-ca-cert-file", s.CAFile, "--tls-auth-clients", "no")
	} else {
		args = append(args, "--port", port)
	}
	if s.opts.Password != "" {
		args = append(args, "--requirepass", s.opts.Password)
	}
	if s.opts.cluster {
		args = append(args, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(s.dir, "nodes.conf"),
			"--cluster-node-timeout", "2000")
	}
	cmd := exec.Command(s.bin, args...)
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	deadline := time.Now().Add(readyTimeout)
	for {
		if s.ping() == nil {
			return nil
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			return fmt.Errorf("exited before it was ready: %s", lastLines(string(log), 5))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("not answering after %v", readyTimeout)
		}
	}
}

func (s *Server) ping() error {
	c := s.Client()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return c.Ping(ctx).Err()
}

// Client is a go-redis client to this server alone.
func (s *Server) Client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: s.Addr, Password: s.opts.Password, TLSConfig: s.tls, DisableIdentity: true, MaxRetries: -1})
}

// Kill stops the server at once (SIGKILL); it is a no-op when stopped.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
	}
}

// Restart starts a killed server again on its port, empty.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	var err error
	for range startAttempts {
		if err = s.launch(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("redis-server restart on %s: %v", s.Addr, err)
}

// CLI runs redis-cli against the server with args and returns its output.
func (s *Server) CLI(t testing.TB, args ...string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(s.Addr)
	base := []string{"-h", host, "-p", port}
	if s.opts.Password != "" {
		base = append(base, "--no-auth-warning", "-a", s.opts.Password)
	}
	if s.opts.TLS {
		base = append(base, "--tls", "--cacert", s.CAFile)
	}
	return run(t, s.cli, append(base, args...)...)
}

func run(t testing.TB, bin string, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v: %s%s", filepath.Base(bin), strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// freePort returns a loopback port free a moment ago; for a cluster node,
// one whose bus port (port + 10000) is free too.
func freePort(cluster bool) (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		if !cluster {
			l.Close()
			return port, nil
		}
		if port+10000 <= 65535 {
			if bus, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000)); err == nil {
				bus.Close()
				l.Close()
				return port, nil
			}
		}
		l.Close()
	}
	return 0, errors.New("no free port pair for a cluster node")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
