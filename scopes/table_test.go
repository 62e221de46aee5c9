package scopes

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// testSpecs is a routing table exercising every matching rule.
func testSpecs() []ServiceSpec {
	cc := GrantClientCredentials
	te := GrantTokenExchange
	return []ServiceSpec{
		{
			Name: "orders", Hosts: []string{"orders.internal", "orders.internal:8443"}, PathPrefix: "/v1",
			Layer: Layer{Grant: &cc, Scope: []string{"orders.read"}},
			Endpoints: []EndpointSpec{
				{Name: "create", Path: "/orders", Methods: []string{"POST"}, Layer: Layer{Scope: []string{"orders.write"}}},
				{Name: "history", Path: "/orders/history", Layer: Layer{Grant: &te, Audience: new("orders")}},
				{Name: "short", Path: "/orders/short"},
				{Name: "all", Path: "/items"},
				{Name: "write", Path: "/items", Methods: []string{"post", "Put"}},
				{Name: "encoded", Path: "/a%2Fb"},
			},
		},
		{Name: "admin", Hosts: []string{"orders.internal"}, PathPrefix: "/v1/admin/"},
		{Name: "v10", Hosts: []string{"orders.internal"}, PathPrefix: "/v10"},
		{Name: "catchall", Hosts: []string{"orders.internal"}},
		{Name: "pinned-port", Hosts: []string{"orders.internal:9000"}, PathPrefix: "/v1"},
		{Name: "port-only", Hosts: []string{"pinned.internal:443"}},
		{Name: "mixed-case", Hosts: []string{"Mixed.Example.COM"}},
		{Name: "v6", Hosts: []string{"[::1]", "[2001:db8::1]:8443", "fe80::1"}},
		{Name: "kube", Hosts: []string{"kube.internal", "dotted.internal.:8080"}},
		{Name: "claims-route", Routes: []string{"HTTPRoute/shop/orders"}},
		{Name: "claims-rule", Routes: []string{"HTTPRoute/shop/orders/rule-a", "GRPCRoute/shop/orders"}},
		{Name: "named-only", Endpoints: []EndpointSpec{{Name: "only", Path: "/only"}}},
	}
}

func newTestTable(t testing.TB) *Table {
	t.Helper()
	tbl, err := NewTable(Layer{ClientID: new("tokenauthz")}, testSpecs())
	if err != nil {
		t.Fatalf("NewTable: %v", err)
	}
	return tbl
}

func TestMatch(t *testing.T) {
	tbl := newTestTable(t)
	tests := []struct {
		name     string
		req      Request
		service  string
		endpoint string
		err      error
	}{
		// Hosts.
		{name: "host-without-port-matches-any-port-entry", req: Request{Host: "orders.internal", Path: "/v1/orders/history"}, service: "orders", endpoint: "history"},
		{name: "host-with-port-matches-any-port-entry", req: Request{Host: "orders.internal:1234", Path: "/v1/orders/history"}, service: "orders", endpoint: "history"},
		{name: "host-is-case-insensitive", req: Request{Host: "ORDERS.Internal:8443", Path: "/v1/orders/history"}, service: "orders", endpoint: "history"},
		{name: "configured-host-is-case-insensitive", req: Request{Host: "mixed.example.com", Path: "/"}, service: "mixed-case"},
		{name: "exact-port-beats-any-port-same-prefix", req: Request{Host: "orders.internal:9000", Path: "/v1/orders"}, service: "pinned-port"},
		{name: "other-port-falls-back-to-any-port", req: Request{Host: "orders.internal:9001", Path: "/v1/orders"}, service: "orders"},
		{name: "exact-port-entry-matches-its-port", req: Request{Host: "pinned.internal:443", Path: "/x"}, service: "port-only"},
		{name: "exact-port-entry-rejects-other-port", req: Request{Host: "pinned.internal:80", Path: "/x"}, err: ErrNoMatch},
		{name: "exact-port-entry-rejects-no-port", req: Request{Host: "pinned.internal", Path: "/x"}, err: ErrNoMatch},
		{name: "unknown-host", req: Request{Host: "nowhere.internal", Path: "/v1/orders"}, err: ErrNoMatch},
		{name: "empty-host", req: Request{Path: "/v1/orders"}, err: ErrNoMatch},
		{name: "ipv6-any-port-with-port", req: Request{Host: "[::1]:9000", Path: "/"}, service: "v6"},
		{name: "ipv6-any-port-without-port", req: Request{Host: "[::1]", Path: "/"}, service: "v6"},
		{name: "ipv6-exact-port", req: Request{Host: "[2001:db8::1]:8443", Path: "/"}, service: "v6"},
		{name: "ipv6-exact-port-uppercase", req: Request{Host: "[2001:DB8::1]:8443", Path: "/"}, service: "v6"},
		{name: "ipv6-exact-port-rejects-other-port", req: Request{Host: "[2001:db8::1]:80", Path: "/"}, err: ErrNoMatch},
		{name: "ipv6-configured-bare-matches-bracketed", req: Request{Host: "[fe80::1]:80", Path: "/"}, service: "v6"},
		{name: "ipv6-request-bare", req: Request{Host: "::1", Path: "/"}, service: "v6"},
		// Route identities (Envoy Gateway route metadata).
		{name: "claimed-route", req: Request{Route: RouteRef{"HTTPRoute", "shop", "orders", ""}, Host: "orders.internal", Path: "/v1/orders/history"}, service: "claims-route"},
		{name: "claimed-rule-beats-route", req: Request{Route: RouteRef{"HTTPRoute", "shop", "orders", "rule-a"}, Path: "/"}, service: "claims-rule"},
		{name: "unclaimed-rule-falls-back-to-route", req: Request{Route: RouteRef{"HTTPRoute", "shop", "orders", "rule-b"}, Path: "/"}, service: "claims-route"},
		{name: "kind-is-part-of-identity", req: Request{Route: RouteRef{"GRPCRoute", "shop", "orders", ""}, Path: "/"}, service: "claims-rule"},
		{name: "unclaimed-route-falls-back-to-host", req: Request{Route: RouteRef{"HTTPRoute", "shop", "other", ""}, Host: "orders.internal", Path: "/v1/orders/history"}, service: "orders", endpoint: "history"},
		{name: "explicit-service-beats-route", req: Request{Service: "orders", Route: RouteRef{"HTTPRoute", "shop", "orders", ""}, Path: "/v1/orders/history"}, service: "orders", endpoint: "history"},
		{name: "section-alone-claims-nothing", req: Request{Route: RouteRef{Section: "rule-a"}, Path: "/"}, err: ErrNoMatch},

		{name: "kelvin-sign-is-not-k", req: Request{Host: "\u212Aube.internal", Path: "/"}, err: ErrNoMatch},
		{name: "dotless-i-is-not-i", req: Request{Host: "orders.\u0131nternal", Path: "/v1"}, err: ErrNoMatch},
		{name: "long-s-is-not-s", req: Request{Host: "order\u017F.internal", Path: "/v1"}, err: ErrNoMatch},
		{name: "fullwidth-letters", req: Request{Host: "\uff4bube.internal", Path: "/"}, err: ErrNoMatch},
		{name: "non-ascii-byte", req: Request{Host: "kube.internal\xff", Path: "/"}, err: ErrNoMatch},
		{name: "space-in-host", req: Request{Host: "kube.internal ", Path: "/"}, err: ErrNoMatch},
		{name: "slash-in-host", req: Request{Host: "kube.internal/x", Path: "/"}, err: ErrNoMatch},
		{name: "userinfo-in-host", req: Request{Host: "a@kube.internal", Path: "/"}, err: ErrNoMatch},
		{name: "backslash-in-host", req: Request{Host: "kube.internal\\", Path: "/"}, err: ErrNoMatch},
		{name: "percent-encoded-letter-is-not-decoded", req: Request{Host: "%6Bube.internal", Path: "/"}, err: ErrNoMatch},
		{name: "ascii-upper-case-still-folds", req: Request{Host: "KUBE.INTERNAL", Path: "/"}, service: "kube"},
		{name: "request-trailing-dot", req: Request{Host: "kube.internal.", Path: "/"}, service: "kube"},
		{name: "request-trailing-dot-with-port", req: Request{Host: "kube.internal.:1234", Path: "/"}, service: "kube"},
		{name: "configured-trailing-dot", req: Request{Host: "dotted.internal:8080", Path: "/"}, service: "kube"},
		{name: "two-trailing-dots", req: Request{Host: "kube.internal..", Path: "/"}, err: ErrNoMatch},

		// Service path prefixes.
		{name: "prefix-exact", req: Request{Host: "orders.internal", Path: "/v1"}, service: "orders"},
		{name: "prefix-trailing-slash", req: Request{Host: "orders.internal", Path: "/v1/"}, service: "orders"},
		{name: "prefix-longest-wins", req: Request{Host: "orders.internal", Path: "/v1/admin/users"}, service: "admin"},
		{name: "prefix-configured-with-trailing-slash", req: Request{Host: "orders.internal", Path: "/v1/admin"}, service: "admin"},
		{name: "prefix-segment-boundary", req: Request{Host: "orders.internal", Path: "/v1/adminx"}, service: "orders"},
		{name: "prefix-v10-not-under-v1", req: Request{Host: "orders.internal", Path: "/v10/orders"}, service: "v10"},
		{name: "prefix-v100-only-catchall", req: Request{Host: "orders.internal", Path: "/v100"}, service: "catchall"},
		{name: "prefix-empty-catches-root", req: Request{Host: "orders.internal", Path: "/"}, service: "catchall"},
		{name: "empty-path-is-root", req: Request{Host: "orders.internal", Path: ""}, service: "catchall"},
		{name: "relative-path-is-rooted", req: Request{Host: "orders.internal", Path: "v1/orders/history"}, service: "orders", endpoint: "history"},

		// Endpoints: longest path, methods.
		{name: "endpoint-exact-path", req: Request{Host: "orders.internal", Path: "/v1/orders/history", Method: "GET"}, service: "orders", endpoint: "history"},
		{name: "endpoint-sub-path", req: Request{Host: "orders.internal", Path: "/v1/orders/history/42"}, service: "orders", endpoint: "history"},
		{name: "endpoint-longest-path-wins", req: Request{Host: "orders.internal", Path: "/v1/orders/short", Method: "POST"}, service: "orders", endpoint: "short"},
		{name: "endpoint-segment-boundary", req: Request{Host: "orders.internal", Path: "/v1/orders/historyx", Method: "GET"}, service: "orders"},
		{name: "endpoint-segment-boundary-falls-to-parent", req: Request{Host: "orders.internal", Path: "/v1/orders/historyx", Method: "POST"}, service: "orders", endpoint: "create"},
		{name: "endpoint-method-allowed", req: Request{Host: "orders.internal", Path: "/v1/orders", Method: "POST"}, service: "orders", endpoint: "create"},
		{name: "endpoint-method-case-insensitive", req: Request{Host: "orders.internal", Path: "/v1/orders", Method: "post"}, service: "orders", endpoint: "create"},
		{name: "endpoint-method-not-allowed-uses-service", req: Request{Host: "orders.internal", Path: "/v1/orders", Method: "GET"}, service: "orders"},
		{name: "endpoint-without-methods-allows-any", req: Request{Host: "orders.internal", Path: "/v1/orders/history", Method: "DELETE"}, service: "orders", endpoint: "history"},
		{name: "endpoint-same-path-method-limited-first", req: Request{Host: "orders.internal", Path: "/v1/items", Method: "POST"}, service: "orders", endpoint: "write"},
		{name: "endpoint-same-path-configured-lowercase-method", req: Request{Host: "orders.internal", Path: "/v1/items", Method: "PUT"}, service: "orders", endpoint: "write"},
		{name: "endpoint-same-path-catch-all", req: Request{Host: "orders.internal", Path: "/v1/items", Method: "GET"}, service: "orders", endpoint: "all"},
		{name: "no-endpoint-uses-service", req: Request{Host: "orders.internal", Path: "/v1/customers"}, service: "orders"},

		// Query, fragment, dot segments, encodings.
		{name: "query-ignored", req: Request{Host: "orders.internal", Path: "/v1/orders/history?page=2"}, service: "orders", endpoint: "history"},
		{name: "query-with-slash-ignored", req: Request{Host: "orders.internal", Path: "/v1/orders?x=/history"}, service: "orders"},
		{name: "query-cannot-change-service", req: Request{Host: "orders.internal", Path: "/v1?/admin/x"}, service: "orders"},
		{name: "fragment-ignored", req: Request{Host: "orders.internal", Path: "/v1/orders/history#top"}, service: "orders", endpoint: "history"},
		{name: "dot-dot-leaves-endpoint", req: Request{Host: "orders.internal", Path: "/v1/orders/history/../x"}, service: "orders"},
		{name: "dot-dot-leaves-service", req: Request{Host: "orders.internal", Path: "/v1/orders/../admin"}, service: "admin"},
		{name: "dot-dot-above-root", req: Request{Host: "orders.internal", Path: "/../../v1/orders/history"}, service: "orders", endpoint: "history"},
		{name: "dot-and-double-slash", req: Request{Host: "orders.internal", Path: "/v1/./orders//history"}, service: "orders", endpoint: "history"},
		{name: "encoded-dot-dot-leaves-endpoint", req: Request{Host: "orders.internal", Path: "/v1/orders/history/%2e%2E/x"}, service: "orders"},
		{name: "encoded-dot-dot-leaves-service", req: Request{Host: "orders.internal", Path: "/v1/orders/%2E%2E/admin/x"}, service: "admin"},
		{name: "encoded-unreserved-decoded", req: Request{Host: "orders.internal", Path: "/v1/%6Frders/histor%79"}, service: "orders", endpoint: "history"},
		{name: "encoded-slash-is-not-a-boundary", req: Request{Host: "orders.internal", Path: "/v1/orders%2Fhistory", Method: "GET"}, service: "orders"},
		{name: "encoded-slash-lowercase-is-not-a-boundary", req: Request{Host: "orders.internal", Path: "/v1%2forders/history"}, service: "catchall"},
		{name: "encoded-slash-endpoint", req: Request{Host: "orders.internal", Path: "/v1/a%2Fb"}, service: "orders", endpoint: "encoded"},
		{name: "encoded-slash-lowercase-hex-endpoint", req: Request{Host: "orders.internal", Path: "/v1/a%2fb"}, service: "orders", endpoint: "encoded"},
		{name: "stray-percent-stays-in-segment", req: Request{Host: "orders.internal", Path: "/v1/orders/history/%zz%"}, service: "orders", endpoint: "history"},
		{name: "stray-percent-cannot-form-escape", req: Request{Host: "orders.internal", Path: "/v1/%6%46rders/history"}, service: "orders"},
		{name: "decoded-slash-not-encoded-endpoint", req: Request{Host: "orders.internal", Path: "/v1/a/b"}, service: "orders"},
		{name: "double-encoded-dot-stays", req: Request{Host: "orders.internal", Path: "/v1/orders/%252e%252e/admin"}, service: "orders"},

		// Explicit names.
		{name: "explicit-service-ignores-host", req: Request{Service: "orders", Host: "nowhere", Path: "/v1/orders/history"}, service: "orders", endpoint: "history"},
		{name: "explicit-service-path-outside-prefix", req: Request{Service: "orders", Path: "/elsewhere"}, service: "orders"},
		{name: "explicit-service-without-hosts", req: Request{Service: "named-only", Path: "/only/x"}, service: "named-only", endpoint: "only"},
		{name: "explicit-service-unknown", req: Request{Service: "nope", Host: "orders.internal", Path: "/v1"}, err: ErrUnknownService},
		{name: "explicit-service-is-case-sensitive", req: Request{Service: "Orders"}, err: ErrUnknownService},
		{name: "explicit-endpoint-ignores-path-and-method", req: Request{Service: "orders", Endpoint: "create", Path: "/x", Method: "GET"}, service: "orders", endpoint: "create"},
		{name: "explicit-endpoint-unknown", req: Request{Service: "orders", Endpoint: "nope"}, err: ErrUnknownEndpoint},
		{name: "explicit-endpoint-of-other-service", req: Request{Service: "admin", Endpoint: "create"}, err: ErrUnknownEndpoint},
		{name: "explicit-endpoint-with-routed-service", req: Request{Endpoint: "short", Host: "orders.internal", Path: "/v1/x"}, service: "orders", endpoint: "short"},
		{name: "explicit-endpoint-routed-service-unknown-endpoint", req: Request{Endpoint: "create", Host: "orders.internal", Path: "/v10"}, err: ErrUnknownEndpoint},
		{name: "explicit-endpoint-no-route", req: Request{Endpoint: "create", Host: "nowhere"}, err: ErrNoMatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := tbl.Match(tt.req)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Match(%+v) error = %v, want %v", tt.req, err, tt.err)
				}
				if m.Service != nil || m.Endpoint != nil {
					t.Errorf("Match(%+v) returned %+v with an error", tt.req, m)
				}
				return
			}
			if err != nil {
				t.Fatalf("Match(%+v): %v", tt.req, err)
			}
			if m.Service.Name != tt.service || m.EndpointName() != tt.endpoint {
				t.Errorf("Match(%+v) = %s/%s, want %s/%s", tt.req, m.Service.Name, m.EndpointName(), tt.service, tt.endpoint)
			}
		})
	}
}

func TestMatchSettings(t *testing.T) {
	tbl := newTestTable(t)
	tests := []struct {
		name string
		req  Request
		want Settings
	}{
		{
			name: "service-level",
			req:  Request{Host: "orders.internal", Path: "/v1/customers"},
			want: Settings{ClientID: "tokenauthz", ClientAuth: ClientAuthBasic, Grant: GrantClientCredentials,
				Scope: []string{"orders.read"}, SubjectTokenType: DefaultSubjectTokenType, Header: DefaultHeader, ClientAssertionType: DefaultClientAssertionType, ActorTokenType: DefaultActorTokenType, HeaderFormat: DefaultHeaderFormat},
		},
		{
			name: "endpoint-replaces-scope",
			req:  Request{Host: "orders.internal", Path: "/v1/orders", Method: "POST"},
			want: Settings{ClientID: "tokenauthz", ClientAuth: ClientAuthBasic, Grant: GrantClientCredentials,
				Scope: []string{"orders.write"}, SubjectTokenType: DefaultSubjectTokenType, Header: DefaultHeader, ClientAssertionType: DefaultClientAssertionType, ActorTokenType: DefaultActorTokenType, HeaderFormat: DefaultHeaderFormat},
		},
		{
			name: "endpoint-overrides-grant-inherits-scope",
			req:  Request{Host: "orders.internal", Path: "/v1/orders/history"},
			want: Settings{ClientID: "tokenauthz", ClientAuth: ClientAuthBasic, Grant: GrantTokenExchange, Audience: "orders",
				Scope: []string{"orders.read"}, SubjectTokenType: DefaultSubjectTokenType, Header: DefaultHeader, ClientAssertionType: DefaultClientAssertionType, ActorTokenType: DefaultActorTokenType, HeaderFormat: DefaultHeaderFormat},
		},
		{
			name: "service-without-layer-gets-root",
			req:  Request{Host: "orders.internal", Path: "/v10"},
			want: Settings{ClientID: "tokenauthz", ClientAuth: ClientAuthBasic, Grant: GrantNone,
				SubjectTokenType: DefaultSubjectTokenType, Header: DefaultHeader, ClientAssertionType: DefaultClientAssertionType, ActorTokenType: DefaultActorTokenType, HeaderFormat: DefaultHeaderFormat},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := tbl.Match(tt.req)
			if err != nil {
				t.Fatalf("Match: %v", err)
			}
			if got := *m.Settings(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Settings() =\n%#v\nwant\n%#v", got, tt.want)
			}
		})
	}
}

func TestNewTableEndpointPaths(t *testing.T) {
	tests := []struct {
		name   string
		prefix string
		path   string
		want   string
	}{
		{"joined", "/v1", "/orders", "/v1/orders"},
		{"prefix-trailing-slash", "/v1/", "/orders", "/v1/orders"},
		{"endpoint-trailing-slash", "/v1", "/orders/", "/v1/orders"},
		{"endpoint-root-is-prefix", "/v1", "/", "/v1"},
		{"no-prefix", "", "/orders", "/orders"},
		{"root-prefix", "/", "/orders", "/orders"},
		{"no-leading-slash", "/v1", "orders", "/v1/orders"},
		{"dot-dot-cannot-escape-prefix", "/v1", "/../admin", "/v1/admin"},
		{"dot-dot-inside-endpoint", "/v1", "/orders/../items", "/v1/items"},
		{"encoded-slash-kept", "/v1", "/a%2Fb", "/v1/a%2Fb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl, err := NewTable(Layer{}, []ServiceSpec{{Name: "s", PathPrefix: tt.prefix, Endpoints: []EndpointSpec{{Name: "e", Path: tt.path}}}})
			if err != nil {
				t.Fatal(err)
			}
			if got := tbl.Services()[0].Endpoints[0].Path; got != tt.want {
				t.Errorf("endpoint path = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNewTableDuplicateHosts(t *testing.T) {
	svc := func(name, prefix string, hosts ...string) ServiceSpec {
		return ServiceSpec{Name: name, Hosts: hosts, PathPrefix: prefix}
	}
	tests := []struct {
		name  string
		specs []ServiceSpec
		want  []string // one substring per expected error; none: no error
	}{
		{"same-host-same-prefix", []ServiceSpec{svc("a", "/v1", "h"), svc("b", "/v1", "h")}, []string{`services.b.hosts: "h" with path_prefix "/v1" is already claimed by service "a"`}},
		{"same-host-no-prefix", []ServiceSpec{svc("a", "", "h"), svc("b", "", "h")}, []string{"services.b.hosts"}},
		{"root-prefix-equals-no-prefix", []ServiceSpec{svc("a", "/", "h"), svc("b", "", "h")}, []string{"services.b.hosts"}},
		{"same-host-different-case", []ServiceSpec{svc("a", "/v1", "H.example"), svc("b", "/v1", "h.EXAMPLE")}, []string{"services.b.hosts"}},
		{"same-prefix-after-cleaning", []ServiceSpec{svc("a", "/v1/", "h"), svc("b", "/v1", "h")}, []string{"services.b.hosts"}},
		{"same-host-and-port", []ServiceSpec{svc("a", "/v1", "h:80"), svc("b", "/v1", "h:80")}, []string{`"h:80"`}},
		{"ipv6-bare-and-bracketed", []ServiceSpec{svc("a", "", "::1"), svc("b", "", "[::1]")}, []string{"services.b.hosts"}},
		{"same-route-claimed-twice", []ServiceSpec{{Name: "a", Routes: []string{"HTTPRoute/shop/orders"}}, {Name: "b", Routes: []string{"HTTPRoute/shop/orders"}}},
			[]string{`services.b.routes: "HTTPRoute/shop/orders" is already claimed by service "a"`}},
		{"every-duplicate-reported", []ServiceSpec{svc("a", "", "h", "i"), svc("b", "", "h", "i")}, []string{`"h"`, `"i"`}},
		{"different-prefix-ok", []ServiceSpec{svc("a", "/v1", "h"), svc("b", "/v2", "h")}, nil},
		{"nested-prefix-ok", []ServiceSpec{svc("a", "/v1", "h"), svc("b", "/v1/admin", "h")}, nil},
		{"any-port-and-exact-port-ok", []ServiceSpec{svc("a", "/v1", "h"), svc("b", "/v1", "h:8443")}, nil},
		{"different-ports-ok", []ServiceSpec{svc("a", "/v1", "h:80"), svc("b", "/v1", "h:8443")}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewTable(Layer{}, tt.specs)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("NewTable: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("NewTable succeeded, want a duplicate-host error")
			}
			var joined interface{ Unwrap() []error }
			if !errors.As(err, &joined) || len(joined.Unwrap()) != len(tt.want) {
				t.Errorf("NewTable error = %v, want %d errors", err, len(tt.want))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("NewTable error = %v, want it to contain %s", err, w)
				}
			}
		})
	}
}

func TestServicesKeepConfigurationOrder(t *testing.T) {
	tbl := newTestTable(t)
	var got []string
	for _, s := range tbl.Services() {
		got = append(got, s.Name)
	}
	var want []string
	for _, s := range testSpecs() {
		want = append(want, s.Name)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Services() = %v, want %v", got, want)
	}
}

// FuzzMatch checks that no request makes Match panic, and that whatever it
// matches is consistent: the endpoint belongs to the service, its path lies
// under the service's prefix, and routed matches honour the host and path.
func FuzzMatch(f *testing.F) {
	seeds := []struct{ service, endpoint, host, path, method, prefix, epPath string }{
		{"", "", "orders.internal", "/v1/orders/history", "GET", "/v1", "/orders"},
		{"", "", "ORDERS.internal:8443", "/v1/orders/../admin?x=1#y", "POST", "/v1/", "/../admin"},
		{"", "", "[::1]:9000", "/v1/a%2Fb/%2e%2e/c", "get", "", "/"},
		{"fuzz", "", "", "//v1///./orders/%2E%2e", "", "/v1/..", "orders/./x"},
		{"fuzz", "e", "h:", "?", "DELETE", "/%2F", "%"},
		{"", "", "[fe80::1", "/v10", "PUT", "/v1", "//"},
		{"", "", "\u212Aube.internal", "/", "GET", "", "/"},
	}
	for _, s := range seeds {
		f.Add(s.service, s.endpoint, s.host, s.path, s.method, s.prefix, s.epPath)
	}
	f.Fuzz(func(t *testing.T, service, endpoint, host, reqPath, method, prefix, epPath string) {
		specs := append(testSpecs(), ServiceSpec{
			Name: "fuzz", Hosts: []string{host}, PathPrefix: prefix,
			Endpoints: []EndpointSpec{{Name: "e", Path: epPath}, {Name: "m", Path: epPath, Methods: []string{method}}},
		})
		tbl, err := NewTable(Layer{}, specs)
		if err != nil && !strings.Contains(err.Error(), "already claimed") {
			t.Fatalf("NewTable: %v", err)
		}
		for _, svc := range tbl.Services() {
			for _, ep := range svc.Endpoints {
				if !underPrefix(ep.Path, svc.PathPrefix) {
					t.Fatalf("service %q endpoint %q path %q is not under prefix %q", svc.Name, ep.Name, ep.Path, svc.PathPrefix)
				}
			}
		}
		for _, req := range []Request{
			{Host: host, Path: reqPath, Method: method},
			{Service: service, Endpoint: endpoint, Host: host, Path: reqPath, Method: method},
		} {
			m, err := tbl.Match(req)
			if err != nil {
				if !errors.Is(err, ErrNoMatch) && !errors.Is(err, ErrUnknownService) && !errors.Is(err, ErrUnknownEndpoint) {
					t.Fatalf("Match(%+v): unexpected error %v", req, err)
				}
				continue
			}
			if m.Service == nil || m.Settings() == nil {
				t.Fatalf("Match(%+v) = %+v without error", req, m)
			}
			p := cleanPath(req.Path)
			if m.Endpoint != nil {
				if !underPrefix(m.Endpoint.Path, m.Service.PathPrefix) {
					t.Fatalf("Match(%+v): endpoint path %q not under prefix %q", req, m.Endpoint.Path, m.Service.PathPrefix)
				}
				if !slicesContains(m.Service.Endpoints, m.Endpoint) {
					t.Fatalf("Match(%+v): endpoint %q is not one of service %q's", req, m.Endpoint.Name, m.Service.Name)
				}
				if req.Endpoint == "" && (!underPrefix(p, m.Endpoint.Path) || !allows(m.Endpoint.Methods, req.Method)) {
					t.Fatalf("Match(%+v): endpoint %q (path %q, methods %v) does not hold path %q", req, m.Endpoint.Name, m.Endpoint.Path, m.Endpoint.Methods, p)
				}
			}
			if req.Service == "" && !ValidHostChars(req.Host) {
				t.Fatalf("Match(%+v): host %q holds bytes no host may hold, yet matched service %q", req, req.Host, m.Service.Name)
			}
			if req.Service == "" && !underPrefix(p, m.Service.PathPrefix) {
				t.Fatalf("Match(%+v): routed to service %q whose prefix %q does not hold %q", req, m.Service.Name, m.Service.PathPrefix, p)
			}
			if cleanPath(p) != p {
				t.Fatalf("cleanPath is not idempotent: %q -> %q -> %q", req.Path, p, cleanPath(p))
			}
		}
	})
}

func TestCleanPath(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "/v1/orders", "/v1/orders"},
		{"query-and-fragment", "/v1/orders?a=/b#c", "/v1/orders"},
		{"fragment-before-query", "/v1#x?y", "/v1"},
		{"empty", "", "/"},
		{"relative", "v1/x", "/v1/x"},
		{"trailing-slash", "/v1/", "/v1"},
		{"dot-segments", "/a/./b/../c", "/a/c"},
		{"above-root", "/../../a", "/a"},
		{"double-slash", "//a//b", "/a/b"},
		{"unreserved-decoded", "/%41%7a%2D%2e%5F%7E%30", "/Az-._~0"},
		{"encoded-dot-segment", "/a/%2E%2e/b", "/b"},
		{"reserved-kept-uppercased", "/a%2fb%3a%3F", "/a%2Fb%3A%3F"},
		{"encoded-percent-kept", "/a%25", "/a%25"},
		{"stray-percent", "/a%", "/a%25"},
		{"stray-percent-short", "/a%4", "/a%254"},
		{"stray-percent-bad-hex", "/a%zz", "/a%25zz"},
		{"no-new-escape-from-decoding", "/%7%30", "/%2570"},
		{"multibyte-kept", "/caf%C3%A9", "/caf%C3%A9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := cleanPath(tt.in)
			if got != tt.want {
				t.Errorf("cleanPath(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if again := cleanPath(got); again != got {
				t.Errorf("cleanPath(%q) = %q, not stable", got, again)
			}
		})
	}
}

func TestSplitHostPort(t *testing.T) {
	tests := []struct{ in, host, port string }{
		{"h", "h", ""},
		{"h:80", "h", "80"},
		{"h:", "h", ""},
		{"[::1]", "[::1]", ""},
		{"[::1]:80", "[::1]", "80"},
		{"[::1]x", "[::1]", ""},
		{"[::1", "[::1", ""},
		{"::1", "::1", ""},
		{"", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			host, port := splitHostPort(tt.in)
			if host != tt.host || port != tt.port {
				t.Errorf("splitHostPort(%q) = %q, %q; want %q, %q", tt.in, host, port, tt.host, tt.port)
			}
		})
	}
}

func slicesContains(eps []*Endpoint, ep *Endpoint) bool {
	for _, e := range eps {
		if e == ep {
			return true
		}
	}
	return false
}

func BenchmarkMatch(b *testing.B) {
	tbl := newTestTable(b)
	benchmarks := []struct {
		name string
		req  Request
	}{
		{"endpoint-by-host", Request{Host: "orders.internal:8443", Path: "/v1/orders/history", Method: "GET"}},
		{"endpoint-with-query", Request{Host: "orders.internal", Path: "/v1/orders?page=2&size=50", Method: "POST"}},
		{"service-level", Request{Host: "orders.internal", Path: "/v1/customers/42", Method: "GET"}},
		{"explicit-names", Request{Service: "orders", Endpoint: "history", Path: "/v1/orders/history", Method: "GET"}},
		{"uppercase-host", Request{Host: "Orders.Internal", Path: "/v1/orders/history", Method: "GET"}},
		{"dot-segments", Request{Host: "orders.internal", Path: "/v1/orders/../orders/./history", Method: "GET"}},
		{"no-match", Request{Host: "nowhere.internal", Path: "/v1/orders", Method: "GET"}},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = tbl.Match(bm.req)
			}
		})
	}
}
