// Command bench measures what tokenauthz costs on the request path, against
// a do-nothing ext_authz server (the floor), and checks its cold path,
// refresh-ahead and long-run behaviour. See docs/benchmarks.md.
//
//	go run ./bench run      # tokenauthz vs floor: CPU/check, throughput, latency, RSS
//	go run ./bench cold     # single flight, 10,000 exchanges, bytes per entry, max_entries
//	go run ./bench expiry   # p99 per second across token expiry (refresh ahead)
//	go run ./bench soak     # bounded soak: errors, goroutines, heap
//	go run ./bench flood    # distinct bogus bearer tokens against a slow IdP
//	go run ./bench fleet    # 1, 3, 10 replicas with and without the shared cache: token requests, cold start
//	go run ./bench profile  # CPU profiles of tokenauthz and the floor at saturation
//	go run ./bench floor    # the floor server alone
//	go run ./bench idp      # the development IdP as a process (used by the others)
//
// Every subcommand exits non-zero when a correctness check fails; none of
// them judges wall-clock figures by exit status.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `bench: tokenauthz benchmarks (see docs/benchmarks.md)

Usage:
  go run ./bench run    [--rounds 2] [--duration 10s] [--rate 2000] [--concurrency 50] [--shared] [--short] ...
  go run ./bench cold   [--users 10000] [--concurrent 1000]
  go run ./bench expiry [--duration 70s] [--ttl 20s] [--rate 1000]
  go run ./bench soak   [--duration 10m] [--ttl 20s] [--rate 500] [--users 500]
  go run ./bench flood  [--attackers 3000] [--duration 6s] [--latency 1.5s] [--deadline 1s]
  go run ./bench fleet  [--replicas 1,3,10] [--cc-keys 10] [--exchange-keys 10] [--ttl 20s] [--lifetimes 2]
  go run ./bench profile [--duration 10s] [--concurrency 50] [--keep DIR]
  go run ./bench floor  --addr 127.0.0.1:0 [--value-len N]
  go run ./bench idp    --addr 127.0.0.1:0 [--ttl 1h]

Each subcommand takes -h for its flags.
`

type command func(ctx context.Context, args []string, out io.Writer) error

var commands = map[string]command{
	"run":     runCmd,
	"cold":    coldCmd,
	"expiry":  expiryCmd,
	"soak":    soakCmd,
	"flood":   floodCmd,
	"fleet":   fleetCmd,
	"profile": profileCmd,
	"floor":   floorCmd,
	"idp":     idpCmd,
}

func main() {
	os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
}

// Main runs one subcommand; it is main without os.Exit, for the smoke test.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "unknown subcommand %q\n\n%s", args[0], usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd(ctx, args[1:], stdout); err != nil {
		if err == errUsage {
			return 2
		}
		fmt.Fprintf(stderr, "bench %s: %v\n", args[0], err)
		return 1
	}
	return 0
}
