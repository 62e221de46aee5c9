package envoy

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/tokenauthz/tokenauthz/authz"
	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/scopes"
)

// checkedRoute is a route on which ext_authz asks tokenauthz, with what
// tokenauthz will be told about its requests.
type checkedRoute struct {
	where string
	req   scopes.Request
	http  *extauthzv3.HttpService // ext_authz HTTP mode: no context_extensions
}

// checkedRoutes lists, across b's static listeners, the routes ext_authz
// is not disabled on, with their context_extensions merged (virtual host,
// then route; route keys win, as in Envoy).
func checkedRoutes(t *testing.T, b *bootstrapv3.Bootstrap) []checkedRoute {
	t.Helper()
	var out []checkedRoute
	for _, l := range b.GetStaticResources().GetListeners() {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				hcm := &hcmv3.HttpConnectionManager{}
				if f.GetTypedConfig().UnmarshalTo(hcm) != nil {
					continue
				}
				for _, hf := range hcm.GetHttpFilters() {
					authz := &extauthzv3.ExtAuthz{}
					if hf.GetTypedConfig().UnmarshalTo(authz) != nil {
						continue
					}
					for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
						out = append(out, vhostRoutes(t, l.GetName(), vh, hf.GetName(), authz)...)
					}
				}
			}
		}
	}
	return out
}

func vhostRoutes(t *testing.T, listener string, vh *routev3.VirtualHost, filter string, f *extauthzv3.ExtAuthz) []checkedRoute {
	http := f.GetHttpService()
	vhCfg := perRoute(t, vh.GetTypedPerFilterConfig()[filter])
	host := ""
	for _, d := range vh.GetDomains() {
		if d != "*" {
			host = strings.TrimSuffix(d, ":*")
			break
		}
	}
	var out []checkedRoute
	for i, r := range vh.GetRoutes() {
		rCfg := perRoute(t, r.GetTypedPerFilterConfig()[filter])
		if rCfg.GetDisabled() || (vhCfg.GetDisabled() && rCfg == nil) {
			continue
		}
		ext := maps.Clone(vhCfg.GetCheckSettings().GetContextExtensions())
		if ext == nil {
			ext = map[string]string{}
		}
		maps.Copy(ext, rCfg.GetCheckSettings().GetContextExtensions())
		m := r.GetMatch()
		req := scopes.Request{Service: ext["service"], Endpoint: ext["endpoint"], Host: host, Path: m.GetPrefix() + m.GetPath()}
		where := fmt.Sprintf("listener %s, virtual host %s, route %d", listener, vh.GetName(), i)
		if md := r.GetMetadata().GetFilterMetadata()[authz.MetadataNamespace].GetFields(); req.Service == "" && md != nil {
			if !slices.Contains(f.GetRouteMetadataContextNamespaces(), authz.MetadataNamespace) {
				t.Errorf("%s: route metadata %s, which ext_authz does not send without route_metadata_context_namespaces: [%s]", where, authz.MetadataNamespace, authz.MetadataNamespace)
			}
			req.Service, req.Endpoint = md["service"].GetStringValue(), md["endpoint"].GetStringValue()
		}
		for _, h := range m.GetHeaders() {
			if h.GetName() == ":method" {
				req.Method = h.GetStringMatch().GetExact()
			}
		}
		if http != nil && len(ext) > 0 {
			t.Errorf("%s: context_extensions %v: Envoy drops them in ext_authz HTTP mode", where, ext)
		}
		out = append(out, checkedRoute{where: where, req: req, http: http})
	}
	return out
}

func perRoute(t *testing.T, a *anypb.Any) *extauthzv3.ExtAuthzPerRoute {
	if a == nil {
		return nil
	}
	pr := &extauthzv3.ExtAuthzPerRoute{}
	if err := a.UnmarshalTo(pr); err != nil {
		t.Fatalf("per-route ext_authz config: %v", err)
	}
	return pr
}

// Each bootstrap's routes must resolve, in the tokenauthz.yaml beside it,
// to a service (and endpoint) that exists: by the context_extensions names
// in gRPC mode, by Host and path in HTTP mode. An ingress bootstrap hands
// tokenauthz the caller's token, so its services must exchange it.
func TestRoutesResolveInTokenauthzConfig(t *testing.T) {
	t.Setenv("TOKENAUTHZ_CLIENT_SECRET", "test-secret")
	for _, path := range filesLike(t, bootstrapGlob) {
		t.Run(caseName(path), func(t *testing.T) {
			cfg := configBeside(t, path)
			routes := checkedRoutes(t, mustLoadBootstrap(t, path))
			if len(routes) == 0 {
				t.Fatal("no route runs ext_authz")
			}
			for _, r := range routes {
				if r.http == nil && r.req.Service == "" {
					t.Errorf("%s: no service in context_extensions or route metadata: tokenauthz must guess from the Host", r.where)
				}
				m, err := cfg.Routes.Match(r.req)
				if err != nil {
					t.Errorf("%s: %v", r.where, err)
					continue
				}
				if r.http != nil {
					checkHTTPService(t, r, m.Settings().Header)
				}
				if g := m.Settings().Grant; strings.Contains(path, "ingress") && g != scopes.GrantTokenExchange {
					t.Errorf("%s: service %s has grant_type %s, want token_exchange of the caller's token", r.where, m.Service.Name, g)
				}
			}
		})
	}
}

// checkHTTPService checks that in HTTP mode Envoy sends requests to
// tokenauthz's check endpoint and copies upstream the header tokenauthz
// answers with (Envoy drops every header it is not told to copy).
func checkHTTPService(t *testing.T, r checkedRoute, header string) {
	t.Helper()
	if p := r.http.GetPathPrefix(); p != authz.CheckPrefix {
		t.Errorf("%s: http_service path_prefix %q, tokenauthz serves %q", r.where, p, authz.CheckPrefix)
	}
	for _, m := range r.http.GetAuthorizationResponse().GetAllowedUpstreamHeaders().GetPatterns() {
		if m.GetExact() == header || (m.GetIgnoreCase() && strings.EqualFold(m.GetExact(), header)) {
			return
		}
	}
	t.Errorf("%s: allowed_upstream_headers lacks %q, the header tokenauthz sets", r.where, header)
}

func TestTokenauthzConfigsLoad(t *testing.T) {
	t.Setenv("TOKENAUTHZ_CLIENT_SECRET", "test-secret")
	for _, path := range filesLike(t, tokenauthzGlob) {
		t.Run(caseName(path), func(t *testing.T) {
			if _, err := config.Load(path); err != nil {
				t.Fatal(err)
			}
		})
	}
}
