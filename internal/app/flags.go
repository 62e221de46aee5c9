package app

import (
	"cmp"
	"flag"
	"os"
	"time"

	"github.com/tokenauthz/tokenauthz/config"
)

// ServeFlags are the flags of `tokenauthz serve`, declared here so that the
// deploy tests parse the args of shipped manifests with the very flag set
// the binary uses.
type ServeFlags struct {
	Config    string        // --config, default $TOKENAUTHZ_CONFIG
	GRPCAddr  string        // --grpc-addr, overrides listen.grpc
	HTTPAddr  string        // --http-addr, overrides listen.http
	AdminAddr string        // --admin-addr, overrides listen.admin
	Pprof     bool          // --pprof, sets listen.pprof
	LogLevel  string        // --log-level
	Drain     time.Duration // --drain, DefaultDrain
}

// Register declares the flags on fs.
func (f *ServeFlags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.Config, "config", os.Getenv("TOKENAUTHZ_CONFIG"), "config file (default $TOKENAUTHZ_CONFIG)")
	fs.StringVar(&f.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.GRPCAddr, "grpc-addr", "", "gRPC listen address (overrides listen.grpc)")
	fs.StringVar(&f.HTTPAddr, "http-addr", "", "HTTP listen address (overrides listen.http)")
	fs.StringVar(&f.AdminAddr, "admin-addr", "", "admin listen address, the status page (overrides listen.admin; default 127.0.0.1:9003)")
	fs.BoolVar(&f.Pprof, "pprof", false, "also serve Go's runtime profiles, /debug/pprof/, on the admin listener (sets listen.pprof)")
	fs.DurationVar(&f.Drain, "drain", DefaultDrain, "after SIGTERM, report NOT_SERVING and keep answering this long before stopping")
}

// Override sets what the flags name over what cfg's file says. serve applies
// it at startup and to every reloaded file.
func (f ServeFlags) Override(cfg *config.Config) {
	cfg.Listen.GRPC = cmp.Or(f.GRPCAddr, cfg.Listen.GRPC)
	cfg.Listen.HTTP = cmp.Or(f.HTTPAddr, cfg.Listen.HTTP)
	cfg.Listen.Admin = cmp.Or(f.AdminAddr, cfg.Listen.Admin)
	cfg.Listen.Pprof = cfg.Listen.Pprof || f.Pprof
}
