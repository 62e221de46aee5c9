package e2e

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// binary is the tokenauthz command built once for the fleet tests, which
// run real processes as a Deployment does.
var binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func tokenauthzBinary(t *testing.T) string {
	t.Helper()
	binary.once.Do(func() {
		binary.dir, binary.err = os.MkdirTemp("", "tokenauthz-e2e-")
		if binary.err != nil {
			return
		}
		binary.path = filepath.Join(binary.dir, "tokenauthz")
		out, err := exec.Command("go", "build", "-o", binary.path, "github.com/tokenauthz/tokenauthz/cmd/tokenauthz").CombinedOutput()
		if err != nil {
			binary.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary.dir != "" {
		os.RemoveAll(binary.dir)
	}
	os.Exit(code)
}

// replica is one `tokenauthz serve` process with a gRPC client.
type replica struct {
	name     string
	httpAddr string
	client   authv3.AuthorizationClient
	log      string
}

// startReplica runs `tokenauthz serve` on free loopback ports with yaml
// (paths in it relative to dir), waits until /readyz answers 200, and
// stops it (SIGTERM) at the end of the test.
func startReplica(t *testing.T, dir, name, yaml string) *replica {
	t.Helper()
	bin := tokenauthzBinary(t)
	var lastErr error
	for range 3 { // a port chosen free may be taken before the server binds it
		grpcAddr, httpAddr := freeAddr(t), freeAddr(t)
		path := filepath.Join(dir, name+".yaml")
		text := fmt.Sprintf("listen: {grpc: %q, http: %q, admin: 127.0.0.1:0}\n%s", grpcAddr, httpAddr, yaml)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		r := &replica{name: name, httpAddr: httpAddr, log: filepath.Join(dir, name+".log")}
		logf, err := os.Create(r.log)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "serve", "--config", path, "--log-level", "info")
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		logf.Close()
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		if lastErr = replicaReady(httpAddr, exited); lastErr != nil {
			_ = cmd.Process.Kill()
			<-exited
			continue
		}
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
				t.Errorf("%s did not stop within 15s of SIGTERM", name)
			}
			if t.Failed() {
				t.Logf("%s log (tail):\n%s", name, r.tail(40))
			}
		})
		conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		r.client = authv3.NewAuthorizationClient(conn)
		return r
	}
	t.Fatalf("%s: %v", name, lastErr)
	return nil
}

func replicaReady(httpAddr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + httpAddr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("exited before it was ready")
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("not ready after 30s")
}

func (r *replica) tail(n int) string {
	b, _ := os.ReadFile(r.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// metric reads one series of the replica's /metrics (0 when absent).
func (r *replica) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + r.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// burst sends perReplica concurrent checks of req to each replica at once
// and returns the injected tokens.
func burst(t *testing.T, fleet []*replica, req *authv3.CheckRequest, perReplica int) []string {
	t.Helper()
	gate := make(chan struct{})
	var wg sync.WaitGroup
	toks := make([]string, len(fleet)*perReplica)
	for i := range toks {
		r := fleet[i%len(fleet)]
		wg.Go(func() {
			<-gate
			toks[i] = injected(t, r.client, req)
		})
	}
	close(gate)
	wg.Wait()
	return toks
}

func freeAddr(t *testing.T) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(freePort(t))
}

// keysFile writes a keys_file of the given one-byte-repeated keys.
func keysFile(t *testing.T, dir, name string, bytes ...byte) string {
	t.Helper()
	var b strings.Builder
	for _, c := range bytes {
		b.WriteString(base64.StdEncoding.EncodeToString([]byte(strings.Repeat(string(rune(c)), 32))) + "\n")
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// inClear lists the secrets found in Redis keys or values.
func inClear(entries map[string]string, secrets []string) []string {
	var found []string
	for _, s := range secrets {
		for k, v := range entries {
			if strings.Contains(k, s) || strings.Contains(v, s) {
				found = append(found, fmt.Sprintf("%.20q... in %s", s, k))
				break
			}
		}
	}
	return found
}
