package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tokenauthz/tokenauthz/devidp"
)

// state is what /readyz and gRPC health say at one moment.
type state struct {
	readyz int
	body   string                                     // substring of the /readyz body
	health healthpb.HealthCheckResponse_ServingStatus // of every name in healthServices
}

func (f *fixture) assertState(t *testing.T, want state) {
	t.Helper()
	if code, body := f.get(t, "/readyz"); code != want.readyz || !strings.Contains(body, want.body) {
		t.Errorf("/readyz %d %q, want %d %q", code, body, want.readyz, want.body)
	}
	for _, svc := range healthServices {
		resp, err := healthpb.NewHealthClient(f.conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != want.health {
			t.Errorf("gRPC health %q: %v %v, want %v", svc, resp.GetStatus(), err, want.health)
		}
	}
}

// watch opens a gRPC health Watch of svc and returns its updates.
func (f *fixture) watch(t *testing.T, svc string) <-chan healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := healthpb.NewHealthClient(f.conn).Watch(ctx, &healthpb.HealthCheckRequest{Service: svc})
	if err != nil {
		t.Fatal(err)
	}
	updates := make(chan healthpb.HealthCheckResponse_ServingStatus, 16)
	go func() {
		defer close(updates)
		for {
			resp, err := stream.Recv()
			if err != nil {
				return
			}
			updates <- resp.GetStatus()
		}
	}()
	return updates
}

// awaitUpdate waits for want on a Watch stream, skipping other statuses.
func awaitUpdate(t *testing.T, updates <-chan healthpb.HealthCheckResponse_ServingStatus, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case got, ok := <-updates:
			if !ok {
				t.Fatalf("watch ended before %v", want)
			}
			if got == want {
				return
			}
		case <-timeout:
			t.Fatalf("watch: no %v within 10s", want)
		}
	}
}

// freeAddr is a loopback address nothing listens on (yet).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestHealthFollowsReadiness walks tokenauthz through every readiness
// state: the issuer unreachable at start, then up (found by background
// discovery), a reload adding an unreachable issuer and one removing it,
// then a drain. In each, /readyz and gRPC health ("" and the ext_authz
// service, by Check and by Watch) must agree.
func TestHealthFollowsReadiness(t *testing.T) {
	parent := t
	idpAddr := freeAddr(t)
	f := &fixture{path: filepath.Join(t.TempDir(), "tokenauthz.yaml")}
	good := fmt.Sprintf(appConfig, "http://"+idpAddr, "orders.read")
	withDown := good + "  down:\n    hosts: [down.internal]\n    issuer: http://127.0.0.1:1/\n    grant_type: client_credentials\n"
	write := func(t *testing.T, text string) {
		if err := os.WriteFile(f.path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(t, good)
	f.serve(t, slog.LevelInfo)
	watches := map[string]<-chan healthpb.HealthCheckResponse_ServingStatus{}
	for _, svc := range healthServices {
		watches[svc] = f.watch(t, svc)
	}
	notServing := state{503, "token endpoints not discovered yet", healthpb.HealthCheckResponse_NOT_SERVING}
	serving := state{200, "ready", healthpb.HealthCheckResponse_SERVING}

	steps := []struct {
		name   string
		action func(t *testing.T)
		want   state
	}{
		{"issuer-unreachable-at-start", func(*testing.T) {}, notServing},
		{"issuer-comes-up", func(t *testing.T) {
			idp, err := devidp.Start(context.Background(), devidp.Options{Addr: idpAddr, Clients: []devidp.Client{{ID: "app", Secret: "app-secret"}}})
			if err != nil {
				t.Fatal(err)
			}
			parent.Cleanup(func() { idp.Close() })
			waitFor(t, "discovery", func() bool { code, _ := f.get(t, "/readyz"); return code == 200 })
		}, serving},
		{"reload-adds-unreachable-issuer", func(t *testing.T) {
			write(t, withDown)
			if err := f.app.Reload(f.path); err != nil {
				t.Fatal(err)
			}
		}, notServing},
		{"reload-removes-it", func(t *testing.T) {
			write(t, good)
			if err := f.app.Reload(f.path); err != nil {
				t.Fatal(err)
			}
		}, serving},
		{"draining", func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			done := make(chan error, 1)
			go func() { done <- f.app.Wait(ctx, time.Second) }()
			parent.Cleanup(func() { <-done })
			waitFor(t, "the drain", func() bool { code, _ := f.get(t, "/readyz"); return code == 503 })
			if code, _ := f.get(t, "/healthz"); code != 200 {
				t.Errorf("/healthz %d while draining: the process is alive", code)
			}
			if d := f.decide(t, "orders.internal", ""); d.Reason != "token_injected" {
				t.Errorf("check while draining: %s, want it still answered", d.Reason)
			}
		}, state{503, "draining", healthpb.HealthCheckResponse_NOT_SERVING}},
	}
	for _, step := range steps {
		if !t.Run(step.name, func(t *testing.T) {
			step.action(t)
			for _, updates := range watches { // first: no Check has synced them
				awaitUpdate(t, updates, step.want.health)
			}
			f.assertState(t, step.want)
		}) {
			return // later states build on this one
		}
	}
}
