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

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tokenauthz/tokenauthz/authz"
	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/scopes"
)

// Request is the request to explain, as given on the command line.
type Request struct {
	Method        string
	URL           string
	Headers       []string // "name: value"
	Context       []string // "key=value" context extensions (service, endpoint)
	RouteMetadata []string // "key=value" of the route's tokenauthz metadata (service, endpoint)
	Route         string   // Envoy Gateway's route identity: KIND/NAMESPACE/NAME[/SECTION]
	Principal     string   // the caller's verified identity (attributes.source.principal)
}

// Input turns the command-line request into what a check would see: it
// builds the CheckRequest Envoy (or Envoy Gateway) would send and reads it
// as Check does.
func (r Request) Input() (authz.Input, error) {
	u, err := url.Parse(r.URL)
	if err != nil || u.Host == "" {
		return authz.Input{}, fmt.Errorf("--url %q: want an absolute URL like https://orders.internal/v1/orders", r.URL)
	}
	method := strings.ToUpper(r.Method)
	h := &authv3.AttributeContext_HttpRequest{Method: method, Host: u.Host, Path: u.RequestURI(),
		Headers: map[string]string{":method": method, ":authority": u.Host, ":path": u.RequestURI()}}
	attrs := &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: h},
		Source: &authv3.AttributeContext_Peer{Principal: r.Principal}, RouteMetadataContext: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{}}}
	var errs []error
	for _, hv := range r.Headers {
		name, value, ok := strings.Cut(hv, ":")
		if !ok || strings.TrimSpace(name) == "" {
			errs = append(errs, fmt.Errorf("--header %q: want 'name: value'", hv))
			continue
		}
		name, value = strings.ToLower(strings.TrimSpace(name)), strings.TrimSpace(value)
		h.Headers[name] = value
		if name == "host" || name == ":authority" {
			h.Host = value
		}
	}
	var err1, err2 error
	attrs.ContextExtensions, err1 = pairs("--context", r.Context)
	md, err2 := pairs("--route-metadata", r.RouteMetadata)
	errs = append(errs, err1, err2)
	if len(md) > 0 {
		attrs.RouteMetadataContext.FilterMetadata[authz.MetadataNamespace] = stringStruct(md)
	}
	if r.Route != "" {
		ref, err := routeRef(r.Route)
		errs = append(errs, err)
		res := map[string]string{"kind": ref.Kind, "namespace": ref.Namespace, "name": ref.Name}
		if ref.Section != "" {
			res["sectionName"] = ref.Section
		}
		attrs.RouteMetadataContext.FilterMetadata[authz.EnvoyGatewayMetadataNamespace] = &structpb.Struct{Fields: map[string]*structpb.Value{
			"resources": structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewStructValue(stringStruct(res))}}),
		}}
	}
	in, _ := authz.InputFromCheck(&authv3.CheckRequest{Attributes: attrs})
	return in, errors.Join(errs...)
}

// pairs reads "service=NAME" and "endpoint=NAME" flags.
func pairs(flag string, kvs []string) (map[string]string, error) {
	m := map[string]string{}
	var errs []error
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || (k != "service" && k != "endpoint") {
			errs = append(errs, fmt.Errorf("%s %q: want service=NAME or endpoint=NAME", flag, kv))
			continue
		}
		m[k] = v
	}
	return m, errors.Join(errs...)
}

func routeRef(s string) (scopes.RouteRef, error) {
	p := strings.Split(s, "/")
	if (len(p) != 3 && len(p) != 4) || slices.Contains(p, "") {
		return scopes.RouteRef{}, fmt.Errorf("--route %q: want KIND/NAMESPACE/NAME or KIND/NAMESPACE/NAME/SECTION", s)
	}
	r := scopes.RouteRef{Kind: p[0], Namespace: p[1], Name: p[2]}
	if len(p) == 4 {
		r.Section = p[3]
	}
	return r, nil
}

func stringStruct(m map[string]string) *structpb.Struct {
	f := make(map[string]*structpb.Value, len(m))
	for k, v := range m {
		f[k] = structpb.NewStringValue(v)
	}
	return &structpb.Struct{Fields: f}
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
	if in.Principal != "" {
		fmt.Fprintf(w, "caller:    %s\n", in.Principal)
	}
	if svc := p.Match.Service; svc != nil {
		fmt.Fprintf(w, "service:   %s (hosts %s, path_prefix %q%s; selected by %s)\n", svc.Name, strings.Join(svc.Hosts, ", "), svc.PathPrefix, routes(svc.Routes), selectedBy(in, svc))
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
		if s.Callers != nil {
			fmt.Fprintf(w, "callers:   %s\n", orNone(strings.Join(s.Callers, ", ")))
		}
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
	fmt.Fprintf(w, "header:    %s: %s\n", s.Header, strings.Replace(s.HeaderFormat, scopes.TokenPlaceholder, "<token from the request below>", 1))
	if rm := s.HeadersToRemove(); len(rm) > 0 {
		fmt.Fprintf(w, "removes:   %s\n", strings.Join(rm, ", "))
	}
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

// selectedBy says how the check chose svc: the context extensions, the
// route's tokenauthz metadata, a route it claims, or host and path.
func selectedBy(in authz.Input, svc *scopes.Service) string {
	switch {
	case in.Service != "":
		return strings.ReplaceAll(in.SelectedBy, "_", " ")
	case in.Route.Kind != "" && slices.ContainsFunc(svc.Routes, func(r string) bool {
		return r == in.Route.String() || r == (scopes.RouteRef{Kind: in.Route.Kind, Namespace: in.Route.Namespace, Name: in.Route.Name}).String()
	}):
		return "route " + in.Route.String()
	}
	return "host and path"
}

func routes(rs []string) string {
	if len(rs) == 0 {
		return ""
	}
	return ", routes " + strings.Join(rs, ", ")
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
