package app

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// healthServices are the gRPC health service names that follow readiness:
// "" (the whole server, what most probes ask) and the ext_authz service
// (what Envoy's gRPC health checks of a cluster name).
var healthServices = []string{"", authv3.Authorization_ServiceDesc.ServiceName}

// DefaultDrain is the drain of `serve` after SIGTERM unless --drain says
// otherwise: a few seconds for Kubernetes endpoints, and Envoys' health
// checks, to drop the pod before its connections close.
const DefaultDrain = 5 * time.Second

// healthResync bounds how long a gRPC health Watch stream lags a readiness
// change that no event announces (an issuer discovered in the background).
// Check answers are evaluated on each call and never lag.
const healthResync = time.Second

// notReady is the one readiness rule, shared by /readyz and gRPC health:
// "" when ready, else why not (each issuer not discovered, and the error of
// its latest attempt). Draining comes first: a stopping server is
// not ready whatever else holds.
func (a *App) notReady() string {
	if a.draining.Load() {
		return "draining"
	}
	cfg := a.Authz.Config()
	var b strings.Builder
	if pending := a.discovery.Pending(Issuers(cfg)); len(pending) > 0 {
		b.WriteString("token endpoints not discovered yet")
		for _, p := range pending {
			fmt.Fprintf(&b, "\nissuer %s: %s", p.Issuer, cmp.Or(p.LastError, "first attempt under way"))
		}
	}
	if bad := cfg.Unusable(time.Now()); len(bad) > 0 {
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		b.WriteString("cannot authenticate to the token endpoint:\n" + strings.Join(bad, "\n"))
	}
	return b.String()
}

// ready is /readyz: 200 "ready", or 503 with the reason of notReady.
func (a *App) ready(w http.ResponseWriter, _ *http.Request) {
	if why := a.notReady(); why != "" {
		http.Error(w, why, http.StatusServiceUnavailable)
		return
	}
	w.Write([]byte("ready\n"))
}

// registerHealth serves gRPC health on the gRPC server, NOT_SERVING until
// ready from the first connection on.
func (a *App) registerHealth() {
	a.health = health.NewServer()
	a.stopping, a.endWatch = context.WithCancel(context.Background())
	a.syncHealth()
	healthpb.RegisterHealthServer(a.grpc, healthServer{Server: a.health, app: a})
}

// stopHealth turns every service NOT_SERVING for good and ends Watch
// streams, which would otherwise hold a graceful stop for its whole grace.
func (a *App) stopHealth() {
	a.health.Shutdown()
	a.endWatch()
}

// healthServer is gRPC health whose status is notReady's verdict: Check
// evaluates it on every call; Watch streams get changes from syncHealth,
// which runs on reload, at drain and every healthResync.
type healthServer struct {
	*health.Server
	app *App
}

func (h healthServer) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	h.app.syncHealth()
	return h.Server.Check(ctx, req)
}

// Watch is the health server's, ended when the app stops.
func (h healthServer) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	defer context.AfterFunc(h.app.stopping, cancel)()
	return h.Server.Watch(req, watchStream{stream, ctx})
}

// watchStream is a Watch stream whose context also ends when the app stops.
type watchStream struct {
	healthpb.Health_WatchServer
	ctx context.Context
}

func (s watchStream) Context() context.Context { return s.ctx }

// syncHealth sets every health service to SERVING or NOT_SERVING by
// notReady. The health server tells Watch streams only of changes.
func (a *App) syncHealth() {
	a.healthMu.Lock()
	defer a.healthMu.Unlock()
	status := healthpb.HealthCheckResponse_SERVING
	if a.notReady() != "" {
		status = healthpb.HealthCheckResponse_NOT_SERVING
	}
	for _, svc := range healthServices {
		a.health.SetServingStatus(svc, status)
	}
}

// followReadiness re-evaluates gRPC health every healthResync until the
// app stops.
func (a *App) followReadiness() {
	t := time.NewTicker(healthResync)
	defer t.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-t.C:
			a.syncHealth()
		}
	}
}

// drain turns the server NOT_SERVING (gRPC health and /readyz) while it
// keeps answering checks for d, so that load balancers and Envoy remove the
// endpoint before connections close. It ends early if a listener fails.
func (a *App) drain(d time.Duration) error {
	a.draining.Store(true)
	a.syncHealth()
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case err := <-a.errs:
		return err
	}
}
