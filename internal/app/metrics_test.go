package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthz/tokenauthz/authz"
	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/internal/syncbuf"
)

// TestMetricsMeanWhatTheySay: token requests count only requests sent;
// one never sent (the issuer not discovered) is counted apart with why;
// readiness and discovery per issuer are gauges; the log shows the
// latency in milliseconds and the grant by its metrics name.
func TestMetricsMeanWhatTheySay(t *testing.T) {
	idp := startIdP(t)
	const down = "http://127.0.0.1:1/"
	tests := []struct {
		name   string
		issuer string
		want   []string // lines of /metrics
		never  []string // substrings of /metrics
		log    []string // substrings of the log
	}{
		{"issuer-discovered", idp.Issuer(), []string{
			`tokenauthz_ready 1`,
			`tokenauthz_issuer_discovered{issuer="` + idp.Issuer() + `"} 1`,
			`tokenauthz_token_requests_total{grant="client_credentials",outcome="ok",service="orders"} 1`,
			`tokenauthz_config_last_reload_success 1`,
		}, []string{"tokenauthz_token_requests_not_sent_total{"}, []string{`"grant":"client_credentials"`, `"latency_ms":`}},
		{"issuer-unreachable", down, []string{
			`tokenauthz_ready 0`,
			`tokenauthz_issuer_discovered{issuer="` + down + `"} 0`,
			`tokenauthz_token_requests_not_sent_total{grant="client_credentials",reason="no_endpoint",service="orders"} 1`,
			`tokenauthz_config_last_reload_success 1`,
		}, []string{"tokenauthz_token_requests_total{", "tokenauthz_token_request_duration_seconds_count{"}, []string{`"reason":"token_endpoint_unavailable"`, `"latency_ms":`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			started := time.Now()
			f := &fixture{idp: idp, path: filepath.Join(t.TempDir(), "tokenauthz.yaml")}
			if err := os.WriteFile(f.path, fmt.Appendf(nil, appConfig, tt.issuer, "orders.read"), 0o600); err != nil {
				t.Fatal(err)
			}
			f.serve(t, slog.LevelInfo)
			if tt.issuer != down {
				waitFor(t, "readyz", func() bool { code, _ := f.get(t, "/readyz"); return code == 200 })
			}
			f.decide(t, "orders.internal", "")
			_, body := f.get(t, "/metrics")
			assertMetrics(t, body, tt.want, tt.never)
			if at := gauge(t, body, "tokenauthz_config_last_reload_timestamp_seconds"); at < float64(started.Unix()) || at > float64(time.Now().Unix()+1) {
				t.Errorf("last reload at %v, want the start (%d)", at, started.Unix())
			}
			for _, w := range tt.log {
				if !strings.Contains(f.logs.String(), w) {
					t.Errorf("log lacks %s:\n%s", w, f.logs)
				}
			}
			if strings.Contains(f.logs.String(), `"latency":`) {
				t.Errorf("log has a latency without its unit:\n%s", f.logs)
			}
		})
	}
}

// TestReloadMetrics: each reload sets the outcome gauge and the time, and
// an issuer a reload removed drops out of the discovery series.
func TestReloadMetrics(t *testing.T) {
	f := &fixture{idp: startIdP(t), path: filepath.Join(t.TempDir(), "tokenauthz.yaml")}
	const down = "http://127.0.0.1:1/"
	withDown := fmt.Sprintf(appConfig, f.idp.Issuer(), "orders.read") +
		"  down: {hosts: [down.internal], issuer: \"" + down + "\", grant_type: client_credentials}\n"
	if err := os.WriteFile(f.path, []byte(withDown), 0o600); err != nil {
		t.Fatal(err)
	}
	f.serve(t, slog.LevelInfo)
	steps := []struct {
		name  string
		file  string
		want  []string
		never []string
	}{
		{"started", "", []string{`tokenauthz_config_last_reload_success 1`, `tokenauthz_issuer_discovered{issuer="` + down + `"} 0`, `tokenauthz_ready 0`}, nil},
		{"rejected", "services: {orders: {grant_type: sideways}}\n", []string{`tokenauthz_config_last_reload_success 0`, `tokenauthz_config_reloads_total{outcome="failure"} 1`}, nil},
		{"accepted-without-the-unreachable-issuer", fmt.Sprintf(appConfig, f.idp.Issuer(), "orders.read"),
			[]string{`tokenauthz_config_last_reload_success 1`, `tokenauthz_config_reloads_total{outcome="success"} 1`, `tokenauthz_issuer_discovered{issuer="` + f.idp.Issuer() + `"} 1`},
			[]string{down}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			before := time.Now()
			if s.file != "" {
				if err := os.WriteFile(f.path, []byte(s.file), 0o600); err != nil {
					t.Fatal(err)
				}
				f.app.Reload(f.path)
			}
			_, body := f.get(t, "/metrics")
			assertMetrics(t, body, s.want, s.never)
			if at := gauge(t, body, "tokenauthz_config_last_reload_timestamp_seconds"); s.file != "" && at < float64(before.Unix()) {
				t.Errorf("last reload at %v, before this reload (%d)", at, before.Unix())
			}
		})
	}
}

// TestConfigWarningsAreLogged: serve logs each warning of the config it
// starts with, and of each reload.
func TestConfigWarningsAreLogged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "warn.yaml")
	write := func(text string) {
		if err := os.WriteFile(path, []byte("listen: {grpc: 127.0.0.1:0, http: 127.0.0.1:0, admin: 127.0.0.1:0}\n"+text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("")
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncbuf.Buffer{}
	a, err := Start(context.Background(), cfg, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Shutdown)
	prefix := `"level":"WARN","msg":"config warning","config":` + strconv.Quote(path) + `,"warning":"` + path + ": "
	if want := prefix + `services: no services configured`; !strings.Contains(logs.String(), want) {
		t.Errorf("start: log lacks %s:\n%s", want, logs)
	}
	if d := a.Authz.Decide(context.Background(), authz.Input{Method: "GET", Host: "x", Path: "/"}); d.Reason != authz.ReasonNoMatch {
		t.Errorf("check: %s, want %s", d.Reason, authz.ReasonNoMatch)
	}
	write("services: {orders: {hosts: [orders.]}}\n")
	if err := a.Reload(path); err != nil {
		t.Fatal(err)
	}
	if want := prefix + `services.orders.hosts[0]: \"orders.\" is matched as \"orders\"`; !strings.Contains(logs.String(), want) {
		t.Errorf("reload: log lacks %s:\n%s", want, logs)
	}
}

// assertMetrics: a /metrics body holds each want as a whole line, and no
// never anywhere.
func assertMetrics(t *testing.T, body string, want, never []string) {
	t.Helper()
	for _, w := range want {
		if !hasLine(body, w) {
			t.Errorf("/metrics lacks the line %s", w)
		}
	}
	for _, n := range never {
		if strings.Contains(body, n) {
			t.Errorf("/metrics has %s", n)
		}
	}
}

func hasLine(body, line string) bool {
	for l := range strings.Lines(body) {
		if strings.TrimSuffix(l, "\n") == line {
			return true
		}
	}
	return false
}

// gauge is the value of an unlabelled series in a /metrics body.
func gauge(t *testing.T, body, name string) float64 {
	t.Helper()
	for l := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}
