// Command tokenauthz is an Envoy external-authorization server that injects
// the OAuth2 token each backend expects. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/internal/app"
	"github.com/tokenauthz/tokenauthz/internal/demo"
	"github.com/tokenauthz/tokenauthz/internal/explain"
)

const usage = `tokenauthz: Envoy ext_authz server that injects backend OAuth2 tokens.

Usage:
  tokenauthz serve    --config FILE [--grpc-addr ADDR] [--http-addr ADDR] [--log-level LEVEL]
  tokenauthz validate --config FILE
  tokenauthz explain  --config FILE --method GET --url URL [--header 'k: v']... [--context service=NAME]...
  tokenauthz demo     [--grpc-addr ADDR] [--http-addr ADDR] [--idp-addr ADDR]
  tokenauthz version

--config defaults to $TOKENAUTHZ_CONFIG.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", os.Getenv("TOKENAUTHZ_CONFIG"), "config file")
	grpcAddr := fs.String("grpc-addr", "", "gRPC listen address (overrides listen.grpc)")
	httpAddr := fs.String("http-addr", "", "HTTP listen address (overrides listen.http)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	idpAddr := fs.String("idp-addr", "127.0.0.1:9400", "demo: the development OpenID provider's address")
	method := fs.String("method", "GET", "explain: request method")
	url := fs.String("url", "", "explain: request URL")
	var headers, contexts multi
	fs.Var(&headers, "header", "explain: request header 'name: value' (repeatable)")
	fs.Var(&contexts, "context", "explain: context extension key=value (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log, err := logger(stderr, *logLevel)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	slog.SetDefault(log) // libraries that log through slog's default (the demo IdP) use ours

	switch cmd {
	case "version":
		fmt.Fprintln(stdout, version())
		return 0
	case "demo":
		return exit(stderr, demo.Run(ctx, stdout, log, demo.Options{GRPCAddr: *grpcAddr, HTTPAddr: *httpAddr, IdPAddr: *idpAddr}))
	}

	if *configPath == "" {
		fmt.Fprintln(stderr, "--config FILE (or TOKENAUTHZ_CONFIG) is required")
		return 2
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	switch cmd {
	case "validate":
		fmt.Fprintf(stdout, "%s: ok (%d services)\n", *configPath, len(cfg.Routes.Services()))
		return 0
	case "explain":
		in, err := explain.Request{Method: *method, URL: *url, Headers: headers, Context: contexts}.Input()
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		explain.Write(stdout, cfg, in)
		return 0
	case "serve":
		cfg.Listen.GRPC = or(*grpcAddr, cfg.Listen.GRPC)
		cfg.Listen.HTTP = or(*httpAddr, cfg.Listen.HTTP)
		a, err := app.Start(ctx, cfg, log)
		if err != nil {
			return exit(stderr, err)
		}
		if err := a.WatchConfig(*configPath); err != nil {
			log.Warn("config file not watched; SIGHUP still reloads", "err", err)
		}
		return exit(stderr, a.Wait(ctx))
	}
	fmt.Fprintf(stderr, "unknown command %q\n\n%s", cmd, usage)
	return 2
}

func exit(stderr io.Writer, err error) int {
	if err == nil || errors.Is(err, context.Canceled) {
		return 0
	}
	fmt.Fprintln(stderr, err)
	return 1
}

func logger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "tokenauthz (unknown version)"
	}
	v := "tokenauthz " + info.Main.Version
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			v += " commit " + s.Value
		case "vcs.modified":
			if s.Value == "true" {
				v += " (modified)"
			}
		}
	}
	return v + " " + info.GoVersion
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ", ") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
