package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tokenauthz/tokenauthz/devidp"
)

const serveConfig = `
listen: {grpc: "127.0.0.1:0", http: "127.0.0.1:0", admin: "127.0.0.1:0"}
defaults: {issuer: %q, client_id: cli, client_secret: cli-secret}
services:
  orders: {hosts: [orders.internal], grant_type: client_credentials}
`

// check asks s about a request to orders.internal: the HTTP status of the
// decision (200 when allowed with a token).
func (s *server) check(t *testing.T) int {
	t.Helper()
	conn, err := grpc.NewClient(s.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Host: "orders.internal", Path: "/"}},
	}})
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	if ok := resp.GetOkResponse(); ok != nil && len(ok.GetHeaders()) == 1 {
		return 200
	}
	return int(resp.GetDeniedResponse().GetStatus().GetCode())
}

// assertHealth runs `tokenauthz health` for both health services.
func (s *server) assertHealth(t *testing.T, wantCode int, wantOut string) {
	t.Helper()
	for _, svc := range []string{"", "envoy.service.auth.v3.Authorization"} {
		if code, out := s.health(t, svc); code != wantCode || !strings.Contains(out, wantOut) {
			t.Errorf("tokenauthz health --service %q: exit %d %q, want %d %q", svc, code, out, wantCode, wantOut)
		}
	}
}

// TestServeStatesOfTheBuiltBinary runs `serve` of the built binary as a
// user does, with the issuer reachable and unreachable, and asserts in each
// state what /readyz, gRPC health (through `tokenauthz health`) and a check
// answer: before SIGTERM, after a SIGHUP reload, during the drain that
// SIGTERM starts, and that it then exits 0, not before the drain is over.
// Start, reload and stop log one line each.
func TestServeStatesOfTheBuiltBinary(t *testing.T) {
	idp, err := devidp.Start(context.Background(), devidp.Options{Clients: []devidp.Client{{ID: "cli", Secret: "cli-secret"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	const drain = time.Second
	tests := []struct {
		name       string
		issuer     string
		readyz     int
		readyzBody string
		healthCode int
		healthOut  string
		check      int // decision status, before and during the drain
		lines      int // log lines in all
	}{
		{"issuer-reachable", idp.Issuer(), 200, "ready", 0, "SERVING", 200, 4}, // + the token request's
		{"issuer-unreachable", "http://127.0.0.1:1/", 503, "token endpoints not discovered yet", 1, "NOT_SERVING", 503, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := serveBinary(t, "--config", writeConfig(t, fmt.Sprintf(serveConfig, tt.issuer)), "--drain", drain.String())
			waitUntil(t, "/readyz "+tt.readyzBody, func() bool { code, _ := s.readyz(t); return code == tt.readyz })
			assertReadyz(t, s, tt.readyz, tt.readyzBody)
			s.assertHealth(t, tt.healthCode, tt.healthOut)
			if got := s.check(t); got != tt.check {
				t.Errorf("check: %d, want %d", got, tt.check)
			}

			s.signal(t, syscall.SIGHUP)
			waitUntil(t, "the reload", func() bool { return len(s.logLines("config reloaded")) == 1 })
			assertReadyz(t, s, tt.readyz, tt.readyzBody)

			s.signal(t, syscall.SIGTERM)
			sent := time.Now()
			waitUntil(t, "the drain", func() bool { _, body := s.readyz(t); return strings.Contains(body, "draining") })
			if took := time.Since(sent); took > drain/2 {
				t.Errorf("/readyz said draining %v after SIGTERM, want at once", took)
			}
			assertReadyz(t, s, 503, "draining")
			s.assertHealth(t, 1, "NOT_SERVING")
			if got := s.check(t); got != tt.check {
				t.Errorf("check while draining: %d, want %d: checks are answered until the drain ends", got, tt.check)
			}
			select {
			case <-s.exited:
			case <-time.After(drain + 15*time.Second):
				t.Fatal("serve did not stop")
			}
			if took := time.Since(sent); s.code != 0 || took < drain {
				t.Errorf("exit %d %v after SIGTERM, want 0 after the %v drain:\n%s", s.code, took, drain, s.logs.String())
			}
			for _, msg := range []string{"serving", "config reloaded", "stopping"} {
				if n := len(s.logLines(msg)); n != 1 {
					t.Errorf("%d %q log lines, want 1", n, msg)
				}
			}
			if stop := s.logLines("stopping"); len(stop) == 1 && (stop[0]["drain"] != drain.String() || !strings.Contains(fmt.Sprint(stop[0]["cause"]), "terminated")) {
				t.Errorf("stopping line %v, want drain %v and the signal as cause", stop[0], drain)
			}
			if n := strings.Count(s.logs.String(), "\n"); tt.lines > 0 && n != tt.lines {
				t.Errorf("%d log lines, want %d:\n%s", n, tt.lines, s.logs.String())
			}
		})
	}
}

func assertReadyz(t *testing.T, s *server, code int, body string) {
	t.Helper()
	if gotCode, gotBody := s.readyz(t); gotCode != code || !strings.Contains(gotBody, body) {
		t.Errorf("/readyz %d %q, want %d %q", gotCode, gotBody, code, body)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServeAdminAddrFlag: --admin-addr overrides listen.admin (here a port
// no listener can have), and the built binary's status page names the
// build as `tokenauthz version` does. A reload of the unchanged file is not
// a listen change waiting for a restart: the flags apply to it as well.
func TestServeAdminAddrFlag(t *testing.T) {
	cfg := strings.Replace(fmt.Sprintf(serveConfig, "http://127.0.0.1:1/"), `admin: "127.0.0.1:0"`, `admin: "127.0.0.1:99999"`, 1)
	s := serveBinary(t, "--config", writeConfig(t, cfg), "--admin-addr", "127.0.0.1:0", "--pprof")
	resp, err := http.Get("http://" + s.admin + "/status.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var status struct {
		Version string `json:"version"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&status); err != nil {
		t.Fatal(err)
	}
	version, err := exec.Command(binary(t), "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimSpace(string(version)); status.Version != want || !strings.Contains(want, "v9.8.7") {
		t.Errorf("status.json version %q, want %q with the stamped v9.8.7", status.Version, want)
	}

	s.signal(t, syscall.SIGHUP)
	waitUntil(t, "the reload", func() bool { return len(s.logLines("config reloaded")) == 1 })
	if line := s.logLines("config reloaded")[0]; line["level"] != "INFO" || line["ignored_until_restart"] != nil {
		t.Errorf("reload of the unchanged file logged %v, want INFO without ignored_until_restart", line)
	}
}
