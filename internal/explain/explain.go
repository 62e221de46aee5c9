// Package explain renders, without any network call, what tokenauthz would do
// with one request: the service and endpoint chosen, the grant, the scope and
// the token request, secrets redacted. It backs `tokenauthz explain`.
package explain

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/tokenauthz/tokenauthz/authz"
	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/scopes"
)

// Request is the request to explain, as given on the command line.
type Request struct {
	Method  string
	URL     string
	Headers []string // "name: value"
	Context []string // "key=value" context extensions (service, endpoint)
}

// Input turns the command-line request into what a check would see.
func (r Request) Input() (authz.Input, error) {
	u, err := url.Parse(r.URL)
	if err != nil || u.Host == "" {
		return authz.Input{}, fmt.Errorf("--url %q: want an absolute URL like https://orders.internal/v1/orders", r.URL)
	}
	in := authz.Input{Method: strings.ToUpper(r.Method), Host: u.Host, Path: u.RequestURI()}
	var errs []error
	for _, h := range r.Headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			errs = append(errs, fmt.Errorf("--header %q: want 'name: value'", h))
			continue
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "authorization":
			in.Authorization = strings.TrimSpace(value)
		case "x-request-id":
			in.RequestID = strings.TrimSpace(value)
		case "host", ":authority":
			in.Host = strings.TrimSpace(value)
		}
	}
	for _, c := range r.Context {
		k, v, ok := strings.Cut(c, "=")
		switch {
		case ok && k == "service":
			in.Service = v
		case ok && k == "endpoint":
			in.Endpoint = v
		default:
			errs = append(errs, fmt.Errorf("--context %q: want service=NAME or endpoint=NAME", c))
		}
	}
	return in, errors.Join(errs...)
}

// Write explains in under cfg to w, and where tokens are cached.
func Write(w io.Writer, cfg *config.Config, in authz.Input) {
	write(w, cfg, in)
	fmt.Fprintf(w, "cache:     %s\n", cacheLine(cfg.Cache))
}

func write(w io.Writer, cfg *config.Config, in authz.Input) {
	p, err := authz.PlanFor(cfg, in)
	d := authz.Preview(p, in, err)
	fmt.Fprintf(w, "request:   %s %s (host %s)\n", in.Method, in.Path, in.Host)
	if svc := p.Match.Service; svc != nil {
		fmt.Fprintf(w, "service:   %s (hosts %s, path_prefix %q)\n", svc.Name, strings.Join(svc.Hosts, ", "), svc.PathPrefix)
		if ep := p.Match.Endpoint; ep != nil {
			fmt.Fprintf(w, "endpoint:  %s (path %s, methods %s)\n", ep.Name, ep.Path, methods(ep.Methods))
			if in.Endpoint != "" && len(ep.Methods) > 0 && !slices.ContainsFunc(ep.Methods, func(m string) bool { return strings.EqualFold(m, in.Method) }) {
				fmt.Fprintf(w, "note:      the endpoint context extension chose %s and overrides its methods: %s is not among %s\n", ep.Name, in.Method, methods(ep.Methods))
			}
		} else {
			fmt.Fprintf(w, "endpoint:  none matched; the service's own settings apply\n")
		}
		s := p.Settings
		fmt.Fprintf(w, "grant:     %s", p.Grant)
		if s.Grant != p.Grant {
			fmt.Fprintf(w, " (configured %s)", s.Grant)
		}
		fmt.Fprintf(w, "\nscope:     %s\n", orNone(strings.Join(s.Scope, " ")))
	}
	if !d.Allowed() {
		fmt.Fprintf(w, "decision:  deny %d %s: %s\n", d.HTTPStatus(), d.Reason, d.Message)
		return
	}
	fmt.Fprintf(w, "decision:  allow (%s)\n", d.Reason)
	if !p.Grant.NeedsToken() {
		return
	}
	s, r := p.Settings, p.Request
	fmt.Fprintf(w, "header:    %s: Bearer <token from the request below>\n", s.Header)
	fmt.Fprintf(w, "token request (not sent):\n")
	switch {
	case r.TokenURL != "":
		fmt.Fprintf(w, "  POST %s\n", r.TokenURL)
	case s.ClientAuth == scopes.ClientAuthTLS:
		fmt.Fprintf(w, "  POST <mtls_endpoint_aliases.token_endpoint, else token_endpoint, of %s/.well-known/openid-configuration>\n", strings.TrimSuffix(r.Issuer, "/"))
	default:
		fmt.Fprintf(w, "  POST <token_endpoint of %s/.well-known/openid-configuration>\n", strings.TrimSuffix(r.Issuer, "/"))
	}
	auth := "none"
	if r.Auth != nil {
		auth = r.Auth.String()
	}
	fmt.Fprintf(w, "  client auth: %s; client_id %s\n", auth, orNone(r.ClientID))
	if r.Actor != nil {
		fmt.Fprintf(w, "  actor_token: the token in %s (redacted), actor_token_type %s\n", r.Actor.Path, r.ActorTokenType)
	}
	form := r.Form()
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	params := map[string]bool{}
	for _, p := range r.Params {
		params[p.Name] = true
	}
	for _, k := range keys {
		v := form.Get(k)
		switch {
		case k == "subject_token" || k == "assertion":
			v = fmt.Sprintf("<redacted, %d bytes>", len(v))
		case params[k]:
			v += " (token_params)"
		}
		fmt.Fprintf(w, "  %s=%s\n", k, v)
	}
}

// cacheLine says where the token is cached: in process, and in Redis when
// the shared cache is on.
func cacheLine(c config.Cache) string {
	s := c.Shared
	if s == nil {
		return "in-process only (cache.shared not set)"
	}
	kind := "standalone Redis"
	if len(s.Addresses) > 1 {
		kind = "Redis Cluster"
	}
	tls := ""
	if s.TLS != nil {
		tls = ", TLS"
	}
	return fmt.Sprintf("in-process, then shared: %s %s%s, prefix %q, %d keys in %s", kind, strings.Join(s.Addresses, " "), tls, s.Prefix, len(s.Keys), s.KeysFile)
}

func methods(m []string) string {
	if len(m) == 0 {
		return "any"
	}
	return strings.Join(m, ",")
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
