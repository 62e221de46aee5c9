package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tokenauthz/tokenauthz/authz"
	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/devidp"

	"github.com/tokenauthz/tokenauthz/internal/syncbuf"
)

const appConfig = `
listen: {grpc: 127.0.0.1:0, http: 127.0.0.1:0, admin: 127.0.0.1:0}
defaults:
  issuer: %s
  client_id: app
  client_secret: app-secret
services:
  orders:
    hosts: [orders.internal]
    grant_type: client_credentials
    scope: %s
`

type fixture struct {
	app    *App
	idp    *devidp.IdP
	path   string
	logs   *syncbuf.Buffer
	client authv3.AuthorizationClient
	conn   *grpc.ClientConn
}

func startIdP(t *testing.T) *devidp.IdP {
	t.Helper()
	idp, err := devidp.Start(context.Background(), devidp.Options{Clients: []devidp.Client{{ID: "app", Secret: "app-secret"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	return idp
}

// start serves appConfig with scope from a file, logging at info.
func start(t *testing.T, scope string) *fixture {
	t.Helper()
	f := &fixture{idp: startIdP(t), path: filepath.Join(t.TempDir(), "tokenauthz.yaml")}
	f.write(t, scope)
	f.serve(t, slog.LevelInfo)
	return f
}

// serve starts the app on f.path and a gRPC client for it.
func (f *fixture) serve(t *testing.T, level slog.Level) {
	t.Helper()
	cfg, err := config.Load(f.path)
	if err != nil {
		t.Fatal(err)
	}
	f.logs = &syncbuf.Buffer{}
	f.app, err = Start(context.Background(), cfg, slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: level})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.app.Shutdown)
	f.conn, err = grpc.NewClient(f.app.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.conn.Close() })
	f.client = authv3.NewAuthorizationClient(f.conn)
}

func (f *fixture) write(t *testing.T, scope string) {
	t.Helper()
	if err := os.WriteFile(f.path, fmt.Appendf(nil, appConfig, f.idp.Issuer(), scope), 0o600); err != nil {
		t.Fatal(err)
	}
}

// scope checks orders.internal and returns the scope of the injected token
// as the IdP recorded it.
func (f *fixture) scope(t *testing.T) string {
	t.Helper()
	resp, err := f.client.Check(context.Background(), checkRequest("orders.internal"))
	if err != nil {
		t.Fatal(err)
	}
	if codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		t.Fatalf("denied: %s", resp.GetDeniedResponse().GetBody())
	}
	tok := strings.TrimPrefix(resp.GetOkResponse().GetHeaders()[0].GetHeader().GetValue(), "Bearer ")
	for _, rec := range f.idp.Issued() {
		if rec.AccessToken == tok {
			return strings.Join(rec.Scope, " ")
		}
	}
	t.Fatal("injected token not issued by the IdP")
	return ""
}

func (f *fixture) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + f.app.HTTPAddr() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	f := start(t, "orders.read")
	waitFor(t, "readyz", func() bool { code, _ := f.get(t, "/readyz"); return code == 200 })
	if code, _ := f.get(t, "/healthz"); code != 200 {
		t.Errorf("/healthz %d", code)
	}
	resp, err := healthpb.NewHealthClient(f.conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("grpc health %v %v", resp, err)
	}
}

func TestReadyzWaitsForDiscovery(t *testing.T) {
	idp := startIdP(t)
	tests := []struct {
		name   string
		issuer string
		why    string // in /readyz and the log line
	}{
		{"unreachable", "http://127.0.0.1:1/", "connection refused"},
		{"issuer-mismatch", idp.Issuer() + "/", "issuer mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Parse("t.yaml", fmt.Appendf(nil, `
listen: {grpc: 127.0.0.1:0, http: 127.0.0.1:0, admin: 127.0.0.1:0}
services:
  down:
    hosts: [down.internal]
    issuer: %s
    client_id: app
    client_secret: app-secret
    grant_type: client_credentials
`, tt.issuer))
			if err != nil {
				t.Fatal(err)
			}
			logs := &syncbuf.Buffer{}
			a, err := Start(context.Background(), cfg, slog.New(slog.NewJSONHandler(logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(a.Shutdown)
			f := &fixture{app: a}
			waitFor(t, "readyz names the issuer and why", func() bool {
				code, body := f.get(t, "/readyz")
				return code == 503 && strings.Contains(body, "issuer "+tt.issuer+": ") && strings.Contains(body, tt.why)
			})
			if code, _ := f.get(t, "/healthz"); code != 200 {
				t.Fatalf("/healthz %d, want 200: the process is alive", code)
			}
			waitFor(t, "a log line naming the issuer and why", func() bool {
				return strings.Contains(logs.String(), `"msg":"discovery failed; retrying"`) &&
					strings.Contains(logs.String(), `"issuer":"`+tt.issuer+`"`) && strings.Contains(logs.String(), tt.why)
			})
			if d := a.Authz.Decide(context.Background(), authz.Input{Method: "GET", Host: "down.internal", Path: "/"}); d.Reason != authz.ReasonUnavailable {
				t.Errorf("check while not discovered: %s, want %s", d.Reason, authz.ReasonUnavailable)
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	f := start(t, "orders.read")
	f.scope(t)
	f.scope(t)
	_, body := f.get(t, "/metrics")
	for _, want := range []string{
		`tokenauthz_checks_total{decision="allow",reason="token_injected",service="orders"} 2`,
		`tokenauthz_token_requests_total{grant="client_credentials",outcome="ok",service="orders"} 1`,
		`tokenauthz_cache_hits_total 1`,
		`tokenauthz_cache_misses_total 1`,
		`tokenauthz_cache_entries 1`,
		`tokenauthz_check_duration_seconds_bucket{decision="allow"`,
		`tokenauthz_token_request_duration_seconds_count{grant="client_credentials",outcome="ok"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestReload(t *testing.T) {
	f := start(t, "orders.read")
	if err := f.app.WatchConfig(f.path, nil); err != nil {
		t.Fatal(err)
	}
	if got := f.scope(t); got != "orders.read" {
		t.Fatalf("scope %q", got)
	}
	requests := f.idp.TokenRequests()

	t.Run("unchanged-settings-keep-their-cached-token", func(t *testing.T) {
		if err := f.app.Reload(f.path); err != nil {
			t.Fatal(err)
		}
		f.scope(t)
		if n := f.idp.TokenRequests(); n != requests {
			t.Fatalf("%d token requests after a reload of the same settings, want %d", n, requests)
		}
	})
	t.Run("file-change-applies-new-scope", func(t *testing.T) {
		f.write(t, "orders.write")
		waitFor(t, "the new scope", func() bool { return f.scope(t) == "orders.write" })
	})
	t.Run("invalid-file-is-rejected-and-old-config-keeps-serving", func(t *testing.T) {
		if err := os.WriteFile(f.path, []byte("services: {orders: {grant_type: sideways}}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the rejection", func() bool { return strings.Contains(f.logs.String(), "config reload rejected") })
		if got := f.scope(t); got != "orders.write" {
			t.Fatalf("scope %q after a rejected reload, want the previous orders.write", got)
		}
		_, body := f.get(t, "/metrics")
		if !strings.Contains(body, `tokenauthz_config_reloads_total{outcome="failure"} 1`) {
			t.Errorf("failed reload not counted")
		}
	})
	t.Run("sighup-reloads", func(t *testing.T) {
		f.write(t, "orders.admin")
		waitFor(t, "the file reload", func() bool { return f.scope(t) == "orders.admin" })
		line := `"msg":"config reloaded","config":` + strconv.Quote(f.path) + `,"trigger":"sighup"`
		before := strings.Count(f.logs.String(), line)
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the SIGHUP reload", func() bool { return strings.Count(f.logs.String(), line) > before })
	})
}

// decide runs one check in process and returns its decision.
func (f *fixture) decide(t *testing.T, host, bearer string) authz.Decision {
	t.Helper()
	in := authz.Input{RequestID: "r-1", Method: "GET", Host: host, Path: "/"}
	if bearer != "" {
		in.Authorization = "Bearer " + bearer
	}
	return f.app.Authz.Decide(context.Background(), in)
}

func TestReloadRereadsSecretFile(t *testing.T) {
	f := &fixture{idp: startIdP(t), path: filepath.Join(t.TempDir(), "tokenauthz.yaml")}
	secret := filepath.Join(filepath.Dir(f.path), "client.secret")
	config := strings.Replace(fmt.Sprintf(appConfig, f.idp.Issuer(), "orders.read"), "client_secret: app-secret", "client_secret_file: client.secret", 1)
	for _, file := range []struct{ path, text string }{{secret, "stale-secret\n"}, {f.path, config}} {
		if err := os.WriteFile(file.path, []byte(file.text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f.serve(t, slog.LevelInfo)
	if d := f.decide(t, "orders.internal", ""); d.Reason != authz.ReasonClientRejected {
		t.Fatalf("with the stale secret: %s, want %s", d.Reason, authz.ReasonClientRejected)
	}
	if err := os.WriteFile(secret, []byte("app-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.app.Reload(f.path); err != nil {
		t.Fatal(err)
	}
	if d := f.decide(t, "orders.internal", ""); d.Reason != authz.ReasonTokenInjected {
		t.Fatalf("after rotating the secret and reloading: %s (%s)", d.Reason, d.Message)
	}
}

func checkRequest(host string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Host: host, Path: "/"},
	}}}
}

func TestReadyzForgetsIssuersAReloadRemoved(t *testing.T) {
	f := &fixture{idp: startIdP(t), path: filepath.Join(t.TempDir(), "tokenauthz.yaml")}
	down := fmt.Sprintf(appConfig, f.idp.Issuer(), "orders.read") + `  down:
    hosts: [down.internal]
    issuer: http://127.0.0.1:1/
    grant_type: client_credentials
`
	if err := os.WriteFile(f.path, []byte(down), 0o600); err != nil {
		t.Fatal(err)
	}
	f.serve(t, slog.LevelInfo)
	if code, _ := f.get(t, "/readyz"); code != 503 {
		t.Fatalf("/readyz %d with an unreachable issuer, want 503", code)
	}
	f.write(t, "orders.read") // the same config without the unreachable service
	if err := f.app.Reload(f.path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "readyz", func() bool { code, _ := f.get(t, "/readyz"); return code == 200 })
}
