// Command tokenauthz is an Envoy external-authorization server that injects
// the OAuth2 token each backend expects. See README.md.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/internal/app"
	"github.com/tokenauthz/tokenauthz/internal/demo"
	"github.com/tokenauthz/tokenauthz/internal/explain"
	"github.com/tokenauthz/tokenauthz/tokens"
)

const usage = `tokenauthz: Envoy ext_authz server that injects backend OAuth2 tokens.

Usage:
  tokenauthz serve    --config FILE [--grpc-addr ADDR] [--http-addr ADDR] [--log-level LEVEL]
  tokenauthz validate --config FILE
  tokenauthz explain  --config FILE --method GET --url URL [--header 'k: v']... [--context service=NAME]...
  tokenauthz jwks     --key FILE [--kid ID] [--alg ALG]
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
	c := &command{name: args[0], stdout: stdout, stderr: stderr, fs: flag.NewFlagSet(args[0], flag.ContinueOnError)}
	c.fs.SetOutput(stderr)
	switch c.name {
	case "serve":
		return c.serve(ctx, args[1:])
	case "validate":
		return c.validate(args[1:])
	case "explain":
		return c.explain(args[1:])
	case "jwks":
		return c.jwks(args[1:])
	case "demo":
		return c.demo(ctx, args[1:])
	case "version":
		if c.parse(args[1:]) != nil {
			return 2
		}
		fmt.Fprintln(stdout, version())
		return 0
	}
	fmt.Fprintf(stderr, "unknown command %q\n\n%s", c.name, usage)
	return 2
}

// command is one subcommand's flags and output; each subcommand declares
// only the flags it takes, so a misplaced flag is an error, not ignored.
type command struct {
	name           string
	fs             *flag.FlagSet
	stdout, stderr io.Writer
	configPath     *string
	logLevel       *string
}

func (c *command) withConfig() {
	c.configPath = c.fs.String("config", os.Getenv("TOKENAUTHZ_CONFIG"), "config file (default $TOKENAUTHZ_CONFIG)")
}

func (c *command) withLog() {
	c.logLevel = c.fs.String("log-level", "info", "debug, info, warn or error")
}

func (c *command) parse(args []string) error {
	if err := c.fs.Parse(args); err != nil {
		return err
	}
	if c.fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "%s: unexpected argument %q\n", c.name, c.fs.Arg(0))
		return errors.New("usage")
	}
	return nil
}

// load parses the flags and loads the config: 0 and the config, or the exit code.
func (c *command) load(args []string) (*config.Config, int) {
	if c.parse(args) != nil {
		return nil, 2
	}
	if *c.configPath == "" {
		fmt.Fprintln(c.stderr, "--config FILE (or TOKENAUTHZ_CONFIG) is required")
		return nil, 2
	}
	cfg, err := config.Load(*c.configPath)
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return nil, 1
	}
	return cfg, 0
}

// logger builds the JSON logger and makes it slog's default, so libraries
// that log through the default (the demo IdP) share its format.
func (c *command) logger() (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(*c.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", *c.logLevel, err)
	}
	log := slog.New(slog.NewJSONHandler(c.stderr, &slog.HandlerOptions{Level: l}))
	slog.SetDefault(log)
	return log, nil
}

func (c *command) serve(ctx context.Context, args []string) int {
	c.withConfig()
	c.withLog()
	grpcAddr := c.fs.String("grpc-addr", "", "gRPC listen address (overrides listen.grpc)")
	httpAddr := c.fs.String("http-addr", "", "HTTP listen address (overrides listen.http)")
	cfg, code := c.load(args)
	if cfg == nil {
		return code
	}
	log, err := c.logger()
	if err != nil {
		return c.exit(err)
	}
	cfg.Listen.GRPC = or(*grpcAddr, cfg.Listen.GRPC)
	cfg.Listen.HTTP = or(*httpAddr, cfg.Listen.HTTP)
	a, err := app.Start(ctx, cfg, log)
	if err != nil {
		return c.exit(err)
	}
	if err := a.WatchConfig(*c.configPath); err != nil {
		log.Warn("config file not watched; SIGHUP still reloads", "err", err)
	}
	return c.exit(a.Wait(ctx))
}

func (c *command) validate(args []string) int {
	c.withConfig()
	cfg, code := c.load(args)
	if cfg == nil {
		return code
	}
	fmt.Fprintf(c.stdout, "%s: ok (%d services)\n", *c.configPath, len(cfg.Routes.Services()))
	return 0
}

func (c *command) explain(args []string) int {
	c.withConfig()
	method := c.fs.String("method", "GET", "request method")
	url := c.fs.String("url", "", "request URL, e.g. https://orders.internal/v1/orders/42")
	var headers, contexts multi
	c.fs.Var(&headers, "header", "request header 'name: value' (repeatable)")
	c.fs.Var(&contexts, "context", "Envoy context extension key=value: service=NAME, endpoint=NAME (repeatable)")
	cfg, code := c.load(args)
	if cfg == nil {
		return code
	}
	in, err := explain.Request{Method: *method, URL: *url, Headers: headers, Context: contexts}.Input()
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return 2
	}
	explain.Write(c.stdout, cfg, in)
	return 0
}

// jwks prints the public JWK Set of a private_key_jwt key, to register the
// client with its IdP.
func (c *command) jwks(args []string) int {
	key := c.fs.String("key", "", "private key file (PEM), as client_key_file")
	kid := c.fs.String("kid", "", "key id, as client_key_id")
	alg := c.fs.String("alg", "", "signing algorithm, as client_assertion_alg (default: from the key)")
	if c.parse(args) != nil {
		return 2
	}
	if *key == "" {
		fmt.Fprintln(c.stderr, "--key FILE is required")
		return 2
	}
	set, err := tokens.PublicJWKS(*key, *kid, *alg)
	if err != nil {
		return c.exit(err)
	}
	fmt.Fprintf(c.stdout, "%s\n", set)
	return 0
}

func (c *command) demo(ctx context.Context, args []string) int {
	c.withLog()
	opts := demo.Options{}
	c.fs.StringVar(&opts.GRPCAddr, "grpc-addr", "127.0.0.1:9001", "tokenauthz gRPC listen address")
	c.fs.StringVar(&opts.HTTPAddr, "http-addr", "127.0.0.1:9002", "tokenauthz HTTP listen address")
	c.fs.StringVar(&opts.IdPAddr, "idp-addr", "127.0.0.1:9400", "the development OpenID provider's address")
	if c.parse(args) != nil {
		return 2
	}
	log, err := c.logger()
	if err != nil {
		return c.exit(err)
	}
	return c.exit(demo.Run(ctx, c.stdout, log, opts))
}

func (c *command) exit(err error) int {
	if err == nil || errors.Is(err, context.Canceled) {
		return 0
	}
	fmt.Fprintln(c.stderr, err)
	return 1
}

// Build stamps for builds where Go cannot read VCS information itself (a
// docker build without .git, GOFLAGS=-buildvcs=false):
//
//	go build -ldflags "-X main.buildVersion=v1.2.3 -X main.buildCommit=$(git rev-parse HEAD)"
//
// `make build` and the Dockerfile set them.
var buildVersion, buildCommit string

// version names the module version, the commit and the Go version: from the
// build info, else from the build stamps.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		info = &debug.BuildInfo{}
	}
	ver, commit, modified := info.Main.Version, buildCommit, false
	if buildVersion != "" {
		ver = buildVersion
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			commit = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	v := "tokenauthz " + cmp.Or(ver, "(unknown version)")
	if commit != "" {
		v += " commit " + commit
	}
	if modified {
		v += " (modified)"
	}
	return v + " " + cmp.Or(info.GoVersion, runtime.Version())
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
