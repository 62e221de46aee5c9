package app

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/internal/buildinfo"
	"github.com/tokenauthz/tokenauthz/internal/status"
)

// newStatus makes the status page of a: it reads the configuration in
// effect, discovery, the cache and the metrics when asked for, and hears
// of denials from the metrics.
func (a *App) newStatus() *status.Page {
	o := status.Options{
		Version:   buildinfo.String(),
		Config:    func() *config.Config { return a.Authz.Config() },
		Issuers:   Issuers,
		NotReady:  a.notReady,
		Discovery: a.discovery,
		Cache:     a.Source,
		Checks:    a.metrics,
	}
	if a.shared != nil {
		o.Shared = a.shared
	}
	p := status.New(o)
	a.metrics.OnDenial(p.ObserveDenial) // before the first check: Start has not served yet
	return p
}

// serveAdmin serves the status page on lis: /status and /status.json,
// nothing an Envoy calls. The page shows the configuration and recent
// denials, so the listener is loopback unless the operator says
// otherwise, and then a warning says so.
func (a *App) serveAdmin(lis net.Listener, pprof bool) {
	handler := a.status.Handler()
	if pprof {
		handler = withPprof(handler)
	}
	// No WriteTimeout: a CPU profile takes as long as it was asked to.
	a.admin = &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	if beyondLoopback(lis.Addr()) {
		a.log.LogAttrs(a.ctx, slog.LevelWarn, "admin listener bound beyond loopback: whoever reaches it sees the configuration and recent denials",
			slog.String("admin", lis.Addr().String()))
	}
	go a.status.Run(a.ctx)
	go func() { a.errs <- a.admin.Serve(lis) }()
}

// withPprof serves Go's runtime profiles under /debug/pprof/ (listen.pprof,
// --pprof), and next everything else. The profiles hold stacks and
// counts, never a value the process holds; they are opt-in all the same,
// since a CPU profile costs the process while it runs.
func withPprof(next http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.Handle("/", next)
	return mux
}

// beyondLoopback reports whether a listener bound to addr can be reached
// from other hosts: any address but 127.0.0.0/8 and ::1 (0.0.0.0 and ::
// included).
func beyondLoopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return !ok || !tcp.IP.IsLoopback()
}

// AdminAddr is the address of the admin listener (the status page).
func (a *App) AdminAddr() string { return a.adminLis.Addr().String() }
