package app

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/tokenauthz/tokenauthz/internal/redistest"
	"github.com/tokenauthz/tokenauthz/internal/status"
)

const prewarmConfig = `
listen: {grpc: 127.0.0.1:0, http: 127.0.0.1:0, admin: 127.0.0.1:0}
cache: {prewarm: true}
defaults: {issuer: %s, client_id: app, client_secret: app-secret}
services:
  orders: {hosts: [orders.internal], grant_type: client_credentials, scope: orders.read}
  billing:
    hosts: [billing.internal]
    grant_type: auto
    scope: billing.read
    endpoints:
      export: {path: /export, grant_type: client_credentials, scope: billing.export}
      history: {path: /history, grant_type: token_exchange}
      same-as-service: {path: /same}
  broken: {hosts: [broken.internal], grant_type: client_credentials, client_secret: wrong}
  public: {hosts: [public.internal], grant_type: none}
%s`

func TestPrewarm(t *testing.T) {
	f := &fixture{idp: startIdP(t), path: filepath.Join(t.TempDir(), "tokenauthz.yaml")}
	write := func(extra string) {
		if err := os.WriteFile(f.path, fmt.Appendf(nil, prewarmConfig, f.idp.Issuer(), extra), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("")
	f.serve(t, slog.LevelInfo)
	// orders, billing (auto: client credentials without a caller),
	// billing/export; broken fails; history and public fetch nothing, and
	// same-as-service is billing's own token.
	waitFor(t, "the prewarm log line", func() bool { return strings.Contains(f.logs.String(), `"msg":"prewarmed"`) })
	if n := f.idp.TokenRequests(); n != 4 {
		t.Errorf("prewarm made %d token requests, want 4 (3 tokens, 1 failure)", n)
	}
	for _, want := range []string{`"at":["`, `"tokens":3`, `"failed":1`, `"msg":"prewarm failed","component":"prewarm","at":"broken"`} {
		if !strings.Contains(f.logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, f.logs.String())
		}
	}
	hits := f.app.Source.Stats().Hits
	if resp, err := f.client.Check(context.Background(), checkRequest("orders.internal")); err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		t.Fatalf("check: %v %v", resp, err)
	}
	if got := f.app.Source.Stats().Hits - hits; got != 1 || f.idp.TokenRequests() != 4 {
		t.Errorf("first check after prewarm: %d hits, %d token requests; want a hit, no request", got, f.idp.TokenRequests())
	}
	if _, body := f.get(t, "/metrics"); strings.Contains(body, "tokenauthz_shared_cache") {
		t.Error("shared cache metrics exported without cache.shared")
	}

	// A reload prewarms what it adds.
	write("  added: {hosts: [added.internal], grant_type: client_credentials, scope: added}\n")
	if err := f.app.Reload(f.path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reload's prewarm", func() bool { return strings.Count(f.logs.String(), `"msg":"prewarmed"`) == 2 })
	last := f.logs.String()[strings.LastIndex(f.logs.String(), `"msg":"prewarmed"`):]
	if line, _, _ := strings.Cut(last, "\n"); !strings.Contains(line, `"added"`) || !strings.Contains(line, `"tokens":4`) {
		t.Errorf("the reload's prewarm did not fetch the added service's token:\n%s", f.logs.String())
	}
}

const sharedAppConfig = `
listen: {grpc: 127.0.0.1:0, http: 127.0.0.1:0, admin: 127.0.0.1:0}
cache:
  shared: {addresses: [%q], keys_file: %s, prefix: "app-test:"}
defaults: {issuer: %s, client_id: app, client_secret: app-secret}
services:
  s1: {hosts: [s1.internal], grant_type: client_credentials, scope: s1}
  s2: {hosts: [s2.internal], grant_type: client_credentials, scope: s2}
  s3: {hosts: [s3.internal], grant_type: client_credentials, scope: s3}
`

func TestSharedCacheAcrossAppsAndKeyRotation(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	idp := startIdP(t)
	dir := t.TempDir()
	k1 := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("1", 32)))
	k2 := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("2", 32)))
	replica := func(name, keys string) *fixture {
		f := &fixture{idp: idp, path: filepath.Join(dir, name+".yaml")}
		writeFile(t, filepath.Join(dir, name+".keys"), keys)
		writeFile(t, f.path, fmt.Sprintf(sharedAppConfig, srv.Addr, name+".keys", idp.Issuer()))
		f.serve(t, slog.LevelInfo)
		return f
	}
	a, b := replica("a", k1), replica("b", k1)
	check := func(f *fixture, host string) {
		t.Helper()
		resp, err := f.client.Check(context.Background(), checkRequest(host))
		if err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
			t.Fatalf("check %s: %v %v", host, resp, err)
		}
	}
	steps := []struct {
		name      string
		bKeys     string // b's keys file before the step; "" unchanged
		host      string
		wantTotal int // token requests so far, after a then b checked host
	}{
		{"same-keys-shared", "", "s1.internal", 1},
		{"b-rotated-to-a-key-a-lacks", k2 + "\n", "s2.internal", 3},
		{"b-keeps-a-key-as-second", k2 + "\n" + k1 + "\n", "s3.internal", 4},
	}
	for _, st := range steps {
		if st.bKeys != "" {
			writeFile(t, filepath.Join(dir, "b.keys"), st.bKeys)
			if err := b.app.Reload(b.path); err != nil {
				t.Fatal(err)
			}
		}
		check(a, st.host)
		check(b, st.host)
		if n := idp.TokenRequests(); n != st.wantTotal {
			t.Errorf("%s: %d token requests so far, want %d", st.name, n, st.wantTotal)
		}
	}
	if !strings.Contains(b.logs.String(), "shared cache: keys reloaded") || strings.Contains(b.logs.String(), "change only on restart") {
		t.Errorf("reload of keys_file: want the keys reloaded, no restart warning:\n%s", b.logs.String())
	}
	_, body := b.get(t, "/metrics")
	for _, want := range []string{
		`tokenauthz_shared_cache_operations_total{op="get",outcome="hit"}`,
		`tokenauthz_shared_cache_operations_total{op="lock",outcome="ok"}`,
		`tokenauthz_shared_cache_up 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	want := status.Shared{Up: true, Addresses: []string{srv.Addr}, Prefix: "app-test:", Keys: 2, KeysFile: filepath.Join(dir, "b.keys")}
	if got := sharedStatus(t, b); !reflect.DeepEqual(got, want) {
		t.Errorf("status.json shared_cache %+v, want %+v", got, want)
	}
	// Another shared setting changes only on restart, with a warning.
	writeFile(t, b.path, strings.Replace(readFile(t, b.path), `"app-test:"`, `"other:"`, 1))
	if err := b.app.Reload(b.path); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.logs.String(), "change only on restart") {
		t.Error("no restart warning for a changed cache.shared.prefix")
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSharedCacheDownStaysReady(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	srv.Kill() // nothing listens on its port now
	idp := startIdP(t)
	dir := t.TempDir()
	f := &fixture{idp: idp, path: filepath.Join(dir, "tokenauthz.yaml")}
	writeFile(t, filepath.Join(dir, "k.keys"), base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))+"\n")
	writeFile(t, f.path, fmt.Sprintf(sharedAppConfig, srv.Addr, "k.keys", idp.Issuer()))
	f.serve(t, slog.LevelInfo)
	waitFor(t, "readiness", func() bool { code, _ := f.get(t, "/readyz"); return code == 200 })
	for _, host := range []string{"s1.internal", "s2.internal", "s1.internal"} {
		resp, err := f.client.Check(context.Background(), checkRequest(host))
		if err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
			t.Fatalf("check %s with Redis down: %v %v", host, resp, err)
		}
	}
	if n := idp.TokenRequests(); n != 2 {
		t.Errorf("%d token requests, want 2: the local cache works as without Redis", n)
	}
	_, body := f.get(t, "/metrics")
	if !strings.Contains(body, "tokenauthz_shared_cache_up 0") {
		t.Error("tokenauthz_shared_cache_up is not 0 with Redis down")
	}
	if !strings.Contains(f.logs.String(), "redis not reachable") {
		t.Errorf("no log line says Redis is unreachable:\n%s", f.logs.String())
	}
	if got := sharedStatus(t, f); got.Up || got.Keys != 1 {
		t.Errorf("status.json shared_cache %+v, want down with 1 key", got)
	}
}

// sharedStatus is the shared_cache of f's /status.json.
func sharedStatus(t *testing.T, f *fixture) status.Shared {
	t.Helper()
	_, body := f.admin(t, "/status.json")
	var snap status.Snapshot
	if err := json.Unmarshal([]byte(body), &snap); err != nil || snap.Shared == nil {
		t.Fatalf("status.json: no shared_cache (%v):\n%s", err, body)
	}
	return *snap.Shared
}
