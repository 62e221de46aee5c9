package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokenauthz/tokenauthz/internal/syncbuf"
)

// built is tokenauthz built once for the package's tests, as `make build`
// does (with version stamps), in a folder TestMain removes.
var built struct {
	once      sync.Once
	dir, path string
	err       error
	out       []byte
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

func binary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "tokenauthz-bin-"); built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "tokenauthz")
		built.out, built.err = exec.Command("go", "build", "-o", built.path,
			"-ldflags", "-X github.com/tokenauthz/tokenauthz/internal/buildinfo.version=v9.8.7 -X github.com/tokenauthz/tokenauthz/internal/buildinfo.commit=0123abcd", ".").CombinedOutput()
	})
	if built.err != nil {
		t.Fatalf("go build: %v\n%s", built.err, built.out)
	}
	return built.path
}

// server is a `tokenauthz serve` process of the built binary.
type server struct {
	cmd        *exec.Cmd
	logs       *syncbuf.Buffer
	grpc, http string // addresses from its "serving" log line
	admin      string
	exited     chan struct{}
	code       int
}

// serveBinary starts the built binary's serve with args and waits for its
// "serving" line; the process is killed at the end of the test if still up.
func serveBinary(t *testing.T, args ...string) *server {
	t.Helper()
	s := &server{logs: &syncbuf.Buffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(binary(t), append([]string{"serve"}, args...)...)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.cmd.Wait()
		s.code = s.cmd.ProcessState.ExitCode()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		<-s.exited
	})
	deadline := time.Now().Add(10 * time.Second)
	for s.grpc == "" {
		select {
		case <-s.exited:
			t.Fatalf("serve exited %d:\n%s", s.code, s.logs.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start:\n%s", s.logs.String())
		}
		if rec := s.logLines("serving"); len(rec) == 1 {
			s.grpc, s.http, s.admin = rec[0]["grpc"].(string), rec[0]["http"].(string), rec[0]["admin"].(string)
		}
	}
	return s
}

// logLines returns the JSON log records whose msg is msg.
func (s *server) logLines(msg string) []map[string]any {
	var out []map[string]any
	for line := range strings.Lines(s.logs.String()) {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

func (s *server) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// readyz is /readyz's status and body.
func (s *server) readyz(t *testing.T) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.http+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body))
}

// health runs `tokenauthz health` of the built binary against s, as a
// compose healthcheck does: its exit code and output.
func (s *server) health(t *testing.T, service string) (int, string) {
	t.Helper()
	out, err := exec.Command(binary(t), "health", "--addr", s.grpc, "--service", service, "--timeout", "2s").CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	code := 0
	if exit != nil {
		code = exit.ExitCode()
	}
	return code, strings.TrimSpace(string(out))
}
