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
	"strings"
	"syscall"

	"github.com/tokenauthz/tokenauthz/config"
)

// subcommand is one verb of the command line.
type subcommand struct {
	name, synopsis, summary string
	// setup declares the subcommand's flags on c and returns what runs it
	// once they are parsed; `help NAME` calls setup alone to list them.
	setup func(c *command) func(ctx context.Context) int
}

// subcommands in the order usage lists them.
var subcommands = []subcommand{
	{"serve", "--config FILE [--grpc-addr ADDR] [--http-addr ADDR] [--admin-addr ADDR] [--log-level LEVEL] [--drain D]",
		"Serve ext_authz over gRPC and HTTP, and the status page on the admin address, until SIGTERM/SIGINT; SIGHUP or a change of the file reloads the config.", (*command).serve},
	{"validate", "--config FILE",
		"Check a config statically, without any network call; exit 1 lists every problem. Warnings go to stderr and exit 0.", (*command).validate},
	{"explain", "--config FILE --method GET --url URL [--header 'k: v']... [--context service=NAME]... [--route-metadata service=NAME]... [--route KIND/NS/NAME[/SECTION]] [--principal ID]",
		"Show the service, endpoint, grant, scope and token request one request would get, without any network call.", (*command).explain},
	{"jwks", "--key FILE [--kid ID] [--alg ALG]",
		"Print the public JWK Set of a private_key_jwt key, to register the client with its IdP.", (*command).jwks},
	{"health", "[--addr ADDR] [--service NAME] [--timeout D]",
		"Ask a running tokenauthz's gRPC health service; exit 0 when SERVING, 1 otherwise (the reason on stderr).", (*command).health},
	{"demo", "[--grpc-addr ADDR] [--http-addr ADDR] [--admin-addr ADDR] [--idp-addr ADDR]",
		"Run a development IdP and tokenauthz on this machine and show real checks.", (*command).demo},
	{"version", "",
		"Print the version, commit and Go version.", (*command).version},
}

func usage() string {
	var b strings.Builder
	b.WriteString("tokenauthz: Envoy ext_authz server that injects backend OAuth2 tokens.\n\nUsage:\n")
	for _, s := range subcommands {
		fmt.Fprintf(&b, "  %s\n", strings.TrimSpace(fmt.Sprintf("tokenauthz %-8s %s", s.name, s.synopsis)))
	}
	b.WriteString("  tokenauthz help [SUBCOMMAND]\n\n--config defaults to $TOKENAUTHZ_CONFIG. `tokenauthz help SUBCOMMAND` lists its flags.\n")
	return b.String()
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return 2
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		return help(args[1:], stdout, stderr)
	}
	sub, ok := find(args[0])
	if !ok {
		fmt.Fprintf(stderr, "unknown command %q\n\n%s", args[0], usage())
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := newCommand(sub, stdout, stderr)
	start := sub.setup(c)
	if code, ok := c.parse(args[1:]); !ok {
		return code
	}
	return start(ctx)
}

// help prints the usage, or one subcommand's with its flags, on stdout.
func help(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (len(args) == 1 && args[0] == "help") {
		fmt.Fprint(stdout, usage())
		return 0
	}
	sub, ok := find(args[0])
	if !ok || len(args) > 1 {
		fmt.Fprintf(stderr, "help: want one subcommand name, got %q\n\n%s", args, usage())
		return 2
	}
	c := newCommand(sub, stdout, stderr)
	sub.setup(c)
	c.usage(stdout)
	return 0
}

func find(name string) (subcommand, bool) {
	for _, s := range subcommands {
		if s.name == name {
			return s, true
		}
	}
	return subcommand{}, false
}

// command is one subcommand's flags and output; each subcommand declares
// only the flags it takes, so a misplaced flag is an error, not ignored.
type command struct {
	sub            subcommand
	fs             *flag.FlagSet
	stdout, stderr io.Writer
	configPath     *string
	logLevel       *string
}

func newCommand(sub subcommand, stdout, stderr io.Writer) *command {
	c := &command{sub: sub, stdout: stdout, stderr: stderr, fs: flag.NewFlagSet(sub.name, flag.ContinueOnError)}
	c.fs.SetOutput(stderr)
	c.fs.Usage = func() {} // parse prints what fits: the usage for -h, a hint on errors
	return c
}

// usage prints the subcommand's synopsis, summary and flags to w.
func (c *command) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", strings.TrimSpace("tokenauthz "+c.sub.name+" "+c.sub.synopsis), c.sub.summary)
	n := 0
	c.fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprint(w, "\nFlags:\n")
		c.fs.SetOutput(w)
		c.fs.PrintDefaults()
		c.fs.SetOutput(c.stderr)
	}
}

func (c *command) withConfig() {
	c.configPath = c.fs.String("config", os.Getenv("TOKENAUTHZ_CONFIG"), "config file (default $TOKENAUTHZ_CONFIG)")
}

func (c *command) withLog() {
	c.logLevel = c.fs.String("log-level", "info", "debug, info, warn or error")
}

// parse parses the flags: ok, or the exit code (0 after -h printed the
// usage, 2 for bad usage).
func (c *command) parse(args []string) (code int, ok bool) {
	err := c.fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		c.usage(c.stdout)
		return 0, false
	case err != nil: // flag printed the error
	case c.fs.NArg() > 0:
		fmt.Fprintf(c.stderr, "%s: unexpected argument %q\n", c.sub.name, c.fs.Arg(0))
	default:
		return 0, true
	}
	fmt.Fprintf(c.stderr, "run 'tokenauthz help %s' for its flags\n", c.sub.name)
	return 2, false
}

// load loads the config: the config, or nil and the exit code.
func (c *command) load() (*config.Config, int) {
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

func (c *command) exit(err error) int {
	if err == nil || errors.Is(err, context.Canceled) {
		return 0
	}
	fmt.Fprintln(c.stderr, err)
	return 1
}
