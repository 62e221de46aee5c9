package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tokenauthz/tokenauthz/internal/app"
	"github.com/tokenauthz/tokenauthz/internal/buildinfo"
	"github.com/tokenauthz/tokenauthz/internal/demo"
	"github.com/tokenauthz/tokenauthz/internal/explain"
	"github.com/tokenauthz/tokenauthz/internal/probe"
	"github.com/tokenauthz/tokenauthz/tokens"
)

func (c *command) serve() func(context.Context) int {
	var f app.ServeFlags
	f.Register(c.fs)
	c.configPath, c.logLevel = &f.Config, &f.LogLevel
	return func(ctx context.Context) int {
		cfg, code := c.load()
		if cfg == nil {
			return code
		}
		log, err := c.logger()
		if err != nil {
			return c.exit(err)
		}
		f.Override(cfg)
		a, err := app.Start(ctx, cfg, log)
		if err != nil {
			return c.exit(err)
		}
		if err := a.WatchConfig(*c.configPath, f.Override); err != nil {
			log.Warn("config file not watched; SIGHUP still reloads", "err", err)
		}
		return c.exit(a.Wait(ctx, f.Drain))
	}
}

func (c *command) validate() func(context.Context) int {
	c.withConfig()
	return func(context.Context) int {
		cfg, code := c.load()
		if cfg == nil {
			return code
		}
		for _, w := range cfg.Warnings {
			fmt.Fprintln(c.stderr, "warning:", w)
		}
		fmt.Fprintf(c.stdout, "%s: ok (%d services)\n", *c.configPath, len(cfg.Routes.Services()))
		return 0
	}
}

func (c *command) explain() func(context.Context) int {
	c.withConfig()
	method := c.fs.String("method", "GET", "request method")
	url := c.fs.String("url", "", "request URL, e.g. https://orders.internal/v1/orders/42")
	var headers, contexts, routeMetadata multi
	c.fs.Var(&headers, "header", "request header 'name: value' (repeatable)")
	c.fs.Var(&contexts, "context", "Envoy context extension key=value: service=NAME, endpoint=NAME (repeatable)")
	c.fs.Var(&routeMetadata, "route-metadata", "the route's tokenauthz metadata key=value: service=NAME, endpoint=NAME (repeatable)")
	route := c.fs.String("route", "", "Envoy Gateway route identity KIND/NAMESPACE/NAME[/SECTION], as its route metadata names it")
	principal := c.fs.String("principal", "", "the caller's principal (its certificate's URI SAN, e.g. spiffe://cluster.local/ns/shop/sa/checkout)")
	return func(context.Context) int {
		cfg, code := c.load()
		if cfg == nil {
			return code
		}
		in, err := explain.Request{Method: *method, URL: *url, Headers: headers, Context: contexts,
			RouteMetadata: routeMetadata, Route: *route, Principal: *principal}.Input()
		if err != nil {
			fmt.Fprintln(c.stderr, err)
			return 2
		}
		explain.Write(c.stdout, cfg, in)
		return 0
	}
}

// health is the probe for images without curl or grpcurl (distroless,
// compose healthchecks): the gRPC health protocol, plaintext.
func (c *command) health() func(context.Context) int {
	addr := c.fs.String("addr", "127.0.0.1:9001", "tokenauthz's gRPC address, host:port")
	service := c.fs.String("service", "", `health service: "" (the server) or envoy.service.auth.v3.Authorization; both follow /readyz`)
	timeout := c.fs.Duration("timeout", 2*time.Second, "give up after this long")
	return func(ctx context.Context) int {
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		status, err := probe.Health(ctx, *addr, *service)
		if err != nil {
			fmt.Fprintln(c.stderr, err)
			return 1
		}
		if status != healthpb.HealthCheckResponse_SERVING {
			fmt.Fprintf(c.stderr, "health %s service %q: %s\n", *addr, *service, status)
			return 1
		}
		fmt.Fprintln(c.stdout, status)
		return 0
	}
}

func (c *command) demo() func(context.Context) int {
	c.withLog()
	opts := demo.Options{}
	c.fs.StringVar(&opts.GRPCAddr, "grpc-addr", "127.0.0.1:9001", "tokenauthz gRPC listen address")
	c.fs.StringVar(&opts.HTTPAddr, "http-addr", "127.0.0.1:9002", "tokenauthz HTTP listen address")
	c.fs.StringVar(&opts.AdminAddr, "admin-addr", "127.0.0.1:9003", "tokenauthz admin listen address (the status page)")
	c.fs.StringVar(&opts.IdPAddr, "idp-addr", "127.0.0.1:9400", "the development OpenID provider's address")
	return func(ctx context.Context) int {
		log, err := c.logger()
		if err != nil {
			return c.exit(err)
		}
		return c.exit(demo.Run(ctx, c.stdout, log, opts))
	}
}

func (c *command) version() func(context.Context) int {
	return func(context.Context) int {
		fmt.Fprintln(c.stdout, buildinfo.String())
		return 0
	}
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ", ") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// jwks prints the public JWK Set of a private_key_jwt key, to register the
// client with its IdP (Hydra's jwks, Okta's public keys, Entra's
// certificate upload takes the PEM instead).
func (c *command) jwks() func(context.Context) int {
	key := c.fs.String("key", "", "private key file (PEM), as client_key_file")
	kid := c.fs.String("kid", "", "key id, as client_key_id")
	alg := c.fs.String("alg", "", "signing algorithm, as client_assertion_alg (default: from the key)")
	return func(context.Context) int {
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
}
