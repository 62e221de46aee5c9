package deploy

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tokenauthz/tokenauthz/authz"
	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/devidp"
	"github.com/tokenauthz/tokenauthz/internal/apptest"
	"github.com/tokenauthz/tokenauthz/internal/redistest"
)

// TestDashboardAndAlertQueriesMatchMetrics: every metric and label the
// Grafana dashboard's and the alert rules' queries use exists on /metrics
// of a running tokenauthz (in process, against devidp, after the checks and
// the reload that make each series appear), and every tokenauthz metric
// served has a dashboard panel.
func TestDashboardAndAlertQueriesMatchMetrics(t *testing.T) {
	served := scrapeRunning(t)
	queries := dashboardQueries(t, readDashboard(t))
	for _, g := range readAlerts(t).Groups {
		for _, r := range g.Rules {
			queries = append(queries, query{"alert " + r.Alert, r.Expr.String()})
		}
	}
	used := map[string]bool{}
	for _, q := range queries {
		t.Run(q.where, func(t *testing.T) {
			for _, p := range served.queryProblems(q.expr) {
				t.Errorf("%s: %s", p, q.expr)
			}
		})
		if strings.HasPrefix(q.where, "panel ") {
			for _, vs := range selectors(mustParse(t, q.expr)) {
				used[strings.TrimSuffix(vs.Name, "_bucket")] = true
			}
		}
	}
	for name := range served {
		family := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		if strings.HasPrefix(name, "tokenauthz_") && !used[family] && !used[name] {
			t.Errorf("%s is served but no dashboard panel shows it", name)
		}
	}
}

// TestQueryProblems: the cross-check's judge finds each kind of mistake.
func TestQueryProblems(t *testing.T) {
	e := exposition{
		"tokenauthz_checks_total":                          {"decision": true, "reason": true, "service": true},
		"tokenauthz_token_request_duration_seconds_bucket": {"grant": true, "outcome": true, "le": true},
	}
	tests := []struct {
		name, query, problem string
	}{
		{"good", `sum by (job, service) (rate(tokenauthz_checks_total{reason=~"token_endpoint_unavailable|timeout", service=~"$service"}[$__rate_interval]))`, ""},
		{"good-histogram", `histogram_quantile(0.99, sum by (grant, le) (rate(tokenauthz_token_request_duration_seconds_bucket[5m])))`, ""},
		{"good-label-values", `label_values(tokenauthz_checks_total{job=~"$job"}, service)`, ""},
		{"unknown-metric", `rate(tokenauthz_check_total[5m])`, "no series tokenauthz_check_total"},
		{"unknown-label", `tokenauthz_checks_total{endpoint="x"}`, `has no label "endpoint"`},
		{"unknown-value", `tokenauthz_checks_total{reason="token_endpoint_unavaliable"}`, `never sets reason to "token_endpoint_unavaliable"`},
		{"unknown-value-in-alternatives", `tokenauthz_checks_total{reason=~"timeout|timed_out"}`, `never sets reason to "timed_out"`},
		{"grouping-label-absent", `sum by (instance, endpoint) (tokenauthz_checks_total)`, `by/without label "endpoint"`},
		{"on-label-absent", `tokenauthz_checks_total / on (path) tokenauthz_checks_total`, `on/ignoring/group label "path"`},
		{"label-values-label-absent", `label_values(tokenauthz_checks_total, user)`, `label_values label "user"`},
		{"does-not-parse", `sum(rate(tokenauthz_checks_total[5m])`, "does not parse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(e.queryProblems(tt.query), "\n")
			if (tt.problem == "") != (got == "") || !strings.Contains(got, tt.problem) {
				t.Errorf("problems %q, want one containing %q", got, tt.problem)
			}
		})
	}
}

type query struct{ where, expr string }

// scrapeRunning starts tokenauthz with one service whose issuer (devidp)
// answers and one whose issuer never does, checks each, reloads once, and
// returns what /metrics then serves.
func scrapeRunning(t *testing.T) exposition {
	t.Helper()
	idp, err := devidp.Start(context.Background(), devidp.Options{Clients: []devidp.Client{{ID: "c", Secret: "s"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	redis := redistest.Start(t, redistest.Options{}) // the shared cache's metrics exist only with it
	dir := t.TempDir()
	path := filepath.Join(dir, "tokenauthz.yaml")
	text := fmt.Sprintf(`
listen: {grpc: 127.0.0.1:0, http: 127.0.0.1:0, admin: 127.0.0.1:0}
cache:
  shared: {addresses: [%q], keys_file: cache-keys}
defaults: {client_id: c, client_secret: s, grant_type: client_credentials}
services:
  orders: {hosts: [orders.internal], issuer: %q}
  down: {hosts: [down.internal], issuer: "http://127.0.0.1:1/"}
`, redis.Addr, idp.Issuer())
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	if err := os.WriteFile(filepath.Join(dir, "cache-keys"), []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a := apptest.Start(t, cfg)
	check := func(host string) authz.Decision {
		return a.Authz.Decide(context.Background(), authz.Input{Method: "GET", Host: host, Path: "/"})
	}
	for deadline := time.Now().Add(10 * time.Second); check("orders.internal").Reason != authz.ReasonTokenInjected; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("orders was never allowed with a token")
		}
	}
	purge(t, a.GRPCAddr(), check("orders.internal")) // a cache hit, whose backend then answers 401
	if d := check("down.internal"); d.Reason != authz.ReasonUnavailable {
		t.Fatalf("down: %s, want %s", d.Reason, authz.ReasonUnavailable)
	}
	if err := a.Reload(path); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + a.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return parseExposition(t, resp.Body)
}

// purge streams one access log entry, as Envoy's http_grpc logger sends
// it, of an upstream 401 to the request d allowed.
func purge(t *testing.T, addr string, d authz.Decision) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := accesslogv3.NewAccessLogServiceClient(conn).StreamAccessLogs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	md, _ := structpb.NewStruct(map[string]any{authz.MetaTokenID: d.TokenID, authz.MetaService: d.Service})
	err = stream.Send(&accesslogv3.StreamAccessLogsMessage{
		Identifier: &accesslogv3.StreamAccessLogsMessage_Identifier{LogName: "tokenauthz"},
		LogEntries: &accesslogv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &accesslogv3.StreamAccessLogsMessage_HTTPAccessLogEntries{
			LogEntry: []*datav3.HTTPAccessLogEntry{{
				CommonProperties: &datav3.AccessLogCommon{Metadata: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{authz.ExtAuthzMetadataNamespace: md}}},
				Response:         &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(401)},
			}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}
}

// parseExposition reads a /metrics page in the text format.
func parseExposition(t *testing.T, r io.Reader) exposition {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatal(err)
	}
	e := exposition{}
	add := func(name string, extra string, ls []*dto.LabelPair) {
		if e[name] == nil {
			e[name] = map[string]bool{}
		}
		for _, l := range ls {
			e[name][l.GetName()] = true
		}
		if extra != "" {
			e[name][extra] = true
		}
	}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM:
				add(name+"_bucket", "le", m.GetLabel())
				add(name+"_sum", "", m.GetLabel())
				add(name+"_count", "", m.GetLabel())
			case dto.MetricType_SUMMARY:
				add(name, "quantile", m.GetLabel())
				add(name+"_sum", "", m.GetLabel())
				add(name+"_count", "", m.GetLabel())
			default:
				add(name, "", m.GetLabel())
			}
		}
	}
	for _, want := range []string{"tokenauthz_token_requests_total", "tokenauthz_token_requests_not_sent_total", "tokenauthz_config_reloads_total", "tokenauthz_issuer_discovered"} {
		if _, ok := e[want]; !ok {
			t.Fatalf("/metrics lacks %s: the scenario made too few series for the cross-check", want)
		}
	}
	return e
}

func mustParse(t *testing.T, q string) parser.Expr {
	t.Helper()
	q = grafanaIntervals.ReplaceAllString(q, "5m")
	if m := labelValues.FindStringSubmatch(q); m != nil {
		q = m[1]
	}
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return expr
}
