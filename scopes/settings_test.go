package scopes

import (
	"reflect"
	"testing"
)

// authKey is one configurable key: how to set it on a layer and read it back
// from settings. Values are strings so one table covers every key.
type authKey struct {
	name string
	set  func(l *Layer, v string)
	get  func(s Settings) any
	want func(v string) any
}

func str(v string) any { return v }

func secretValue(level string) Secret { return Secret{Value: level, Key: level + ".client_secret"} }

func secretFile(level string) Secret {
	return Secret{Value: level, File: "/run/" + level, Key: level + ".client_secret_file"}
}

var authKeys = []authKey{
	{"issuer", func(l *Layer, v string) { l.TokenEndpoint = &TokenEndpoint{Issuer: v} },
		func(s Settings) any { return s.TokenEndpoint }, func(v string) any { return TokenEndpoint{Issuer: v} }},
	{"token_url", func(l *Layer, v string) { l.TokenEndpoint = &TokenEndpoint{TokenURL: v} },
		func(s Settings) any { return s.TokenEndpoint }, func(v string) any { return TokenEndpoint{TokenURL: v} }},
	{"client_id", func(l *Layer, v string) { l.ClientID = &v },
		func(s Settings) any { return s.ClientID }, str},
	{"client_secret", func(l *Layer, v string) { l.Secret = new(secretValue(v)) },
		func(s Settings) any { return s.Secret }, func(v string) any { return secretValue(v) }},
	{"client_secret_file", func(l *Layer, v string) { l.Secret = new(secretFile(v)) },
		func(s Settings) any { return s.Secret }, func(v string) any { return secretFile(v) }},
	{"client_auth", func(l *Layer, v string) { ca := ClientAuth(v); l.ClientAuth = &ca },
		func(s Settings) any { return s.ClientAuth }, func(v string) any { return ClientAuth(v) }},
	{"grant_type", func(l *Layer, v string) { g := Grant(v); l.Grant = &g },
		func(s Settings) any { return s.Grant }, func(v string) any { return Grant(v) }},
	{"scope", func(l *Layer, v string) { l.Scope = []string{v, v + ".x"} },
		func(s Settings) any { return s.Scope }, func(v string) any { return []string{v, v + ".x"} }},
	{"audience", func(l *Layer, v string) { l.Audience = &v },
		func(s Settings) any { return s.Audience }, str},
	{"resource", func(l *Layer, v string) { l.Resource = &v },
		func(s Settings) any { return s.Resource }, str},
	{"subject_token_type", func(l *Layer, v string) { l.SubjectTokenType = &v },
		func(s Settings) any { return s.SubjectTokenType }, str},
	{"requested_token_type", func(l *Layer, v string) { l.RequestedTokenType = &v },
		func(s Settings) any { return s.RequestedTokenType }, str},
	{"header", func(l *Layer, v string) { l.Header = &v },
		func(s Settings) any { return s.Header }, str},
	{"client_key_file", func(l *Layer, v string) { l.ClientKeyFile = &v },
		func(s Settings) any { return s.ClientKeyFile }, str},
	{"client_key_id", func(l *Layer, v string) { l.ClientKeyID = &v },
		func(s Settings) any { return s.ClientKeyID }, str},
	{"client_cert_file", func(l *Layer, v string) { l.ClientCertFile = &v },
		func(s Settings) any { return s.ClientCertFile }, str},
	{"client_assertion_alg", func(l *Layer, v string) { l.ClientAssertionAlg = &v },
		func(s Settings) any { return s.ClientAssertionAlg }, str},
	{"client_assertion_audience", func(l *Layer, v string) { l.ClientAssertionAudience = &v },
		func(s Settings) any { return s.ClientAssertionAudience }, str},
	{"client_assertion_file", func(l *Layer, v string) { l.ClientAssertionFile = &v },
		func(s Settings) any { return s.ClientAssertionFile }, str},
	{"client_assertion_type", func(l *Layer, v string) { l.ClientAssertionType = &v },
		func(s Settings) any { return s.ClientAssertionType }, str},
	{"token_params", func(l *Layer, v string) { l.TokenParams = []Param{{"level", v}} },
		func(s Settings) any { return s.TokenParams }, func(v string) any { return []Param{{"level", v}} }},
	{"actor_token_file", func(l *Layer, v string) { l.ActorTokenFile = &v },
		func(s Settings) any { return s.ActorTokenFile }, str},
	{"actor_token_type", func(l *Layer, v string) { l.ActorTokenType = &v },
		func(s Settings) any { return s.ActorTokenType }, str},
}

var levels = []string{"defaults", "service", "endpoint"}

// TestInheritEveryKey sets each key at every level down to the nearest one and
// checks that the service and the endpoint see the nearest value.
func TestInheritEveryKey(t *testing.T) {
	for _, k := range authKeys {
		for nearest, level := range levels {
			t.Run(k.name+"-nearest-"+level, func(t *testing.T) {
				var layers [3]Layer
				for i := 0; i <= nearest; i++ {
					k.set(&layers[i], levels[i])
				}
				root := Root(layers[0])
				svc := root.Inherit(layers[1])
				ep := svc.Inherit(layers[2])

				if got, want := k.get(ep), k.want(levels[nearest]); !reflect.DeepEqual(got, want) {
					t.Errorf("endpoint %s = %#v, want %#v", k.name, got, want)
				}
				if got, want := k.get(svc), k.want(levels[min(nearest, 1)]); !reflect.DeepEqual(got, want) {
					t.Errorf("service %s = %#v, want %#v", k.name, got, want)
				}
				if got, want := k.get(root), k.want(levels[0]); !reflect.DeepEqual(got, want) {
					t.Errorf("root %s = %#v, want %#v", k.name, got, want)
				}
			})
		}
	}
}

// TestInheritSkipsUnsetLevel checks that a key set only at the defaults
// reaches the endpoint through a service that leaves it unset.
func TestInheritSkipsUnsetLevel(t *testing.T) {
	for _, k := range authKeys {
		t.Run(k.name, func(t *testing.T) {
			var root Layer
			k.set(&root, "defaults")
			ep := Root(root).Inherit(Layer{}).Inherit(Layer{})
			if got, want := k.get(ep), k.want("defaults"); !reflect.DeepEqual(got, want) {
				t.Errorf("endpoint %s = %#v, want %#v", k.name, got, want)
			}
		})
	}
}

func TestInheritWholeValue(t *testing.T) {
	empty := ""
	tests := []struct {
		name          string
		parent, child Layer
		check         func(t *testing.T, s Settings)
	}{
		{
			name:   "scope-replaced-not-merged",
			parent: Layer{Scope: []string{"a", "b"}},
			child:  Layer{Scope: []string{"c"}},
			check:  wantField(func(s Settings) any { return s.Scope }, []string{"c"}),
		},
		{
			name:   "scope-explicitly-empty-clears",
			parent: Layer{Scope: []string{"a", "b"}},
			child:  Layer{Scope: []string{}},
			check:  wantField(func(s Settings) any { return len(s.Scope) }, 0),
		},
		{
			name:   "scope-nil-inherits",
			parent: Layer{Scope: []string{"a", "b"}},
			child:  Layer{},
			check:  wantField(func(s Settings) any { return s.Scope }, []string{"a", "b"}),
		},
		{
			name:   "issuer-drops-parent-token-url",
			parent: Layer{TokenEndpoint: &TokenEndpoint{Issuer: "https://a/", TokenURL: "https://a/token"}},
			child:  Layer{TokenEndpoint: &TokenEndpoint{Issuer: "https://b/"}},
			check:  wantField(func(s Settings) any { return s.TokenEndpoint }, TokenEndpoint{Issuer: "https://b/"}),
		},
		{
			name:   "token-url-drops-parent-issuer",
			parent: Layer{TokenEndpoint: &TokenEndpoint{Issuer: "https://a/"}},
			child:  Layer{TokenEndpoint: &TokenEndpoint{TokenURL: "https://b/token"}},
			check:  wantField(func(s Settings) any { return s.TokenEndpoint }, TokenEndpoint{TokenURL: "https://b/token"}),
		},
		{
			name:   "secret-file-replaces-secret-value",
			parent: Layer{Secret: &Secret{Value: "s1", Key: "defaults.client_secret"}},
			child:  Layer{Secret: &Secret{Value: "s2", File: "/run/s2", Key: "services.a.client_secret_file"}},
			check: wantField(func(s Settings) any { return s.Secret },
				Secret{Value: "s2", File: "/run/s2", Key: "services.a.client_secret_file"}),
		},
		{
			name:   "secret-value-replaces-secret-file",
			parent: Layer{Secret: &Secret{Value: "s1", File: "/run/s1", Key: "defaults.client_secret_file"}},
			child:  Layer{Secret: &Secret{Value: "s2", Key: "services.a.client_secret"}},
			check:  wantField(func(s Settings) any { return s.Secret }, Secret{Value: "s2", Key: "services.a.client_secret"}),
		},
		{
			name:   "explicit-empty-string-overrides",
			parent: Layer{Audience: new("orders")},
			child:  Layer{Audience: &empty},
			check:  wantField(func(s Settings) any { return s.Audience }, ""),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, Root(tt.parent).Inherit(tt.child))
		})
	}
}

func wantField(get func(Settings) any, want any) func(*testing.T, Settings) {
	return func(t *testing.T, s Settings) {
		t.Helper()
		if got := get(s); !reflect.DeepEqual(got, want) {
			t.Errorf("got %#v, want %#v", got, want)
		}
	}
}

func TestInheritDoesNotAliasScope(t *testing.T) {
	layer := Layer{Scope: []string{"a", "b"}}
	s := Root(Layer{}).Inherit(layer)
	s.Scope[0] = "changed"
	if layer.Scope[0] != "a" {
		t.Errorf("layer scope changed through settings: %v", layer.Scope)
	}
}

func TestRootBuiltInDefaults(t *testing.T) {
	want := Settings{
		ClientAuth:          ClientAuthBasic,
		Grant:               GrantNone,
		SubjectTokenType:    "urn:ietf:params:oauth:token-type:access_token",
		Header:              "authorization",
		ClientAssertionType: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
		ActorTokenType:      "urn:ietf:params:oauth:token-type:jwt",
		HeaderFormat:        "Bearer {token}",
	}
	if got := Root(Layer{}); !reflect.DeepEqual(got, want) {
		t.Errorf("Root(empty) = %#v, want %#v", got, want)
	}
}

func TestGrantEffective(t *testing.T) {
	tests := []struct {
		name        string
		grant       Grant
		callerToken bool
		want        Grant
		needsToken  bool
		needsSubj   bool
	}{
		{"none-with-caller-token", GrantNone, true, GrantNone, false, false},
		{"none-without-caller-token", GrantNone, false, GrantNone, false, false},
		{"client-credentials-with-caller-token", GrantClientCredentials, true, GrantClientCredentials, true, false},
		{"client-credentials-without-caller-token", GrantClientCredentials, false, GrantClientCredentials, true, false},
		{"token-exchange-with-caller-token", GrantTokenExchange, true, GrantTokenExchange, true, true},
		{"token-exchange-without-caller-token", GrantTokenExchange, false, GrantTokenExchange, true, true},
		{"auto-with-caller-token", GrantAuto, true, GrantTokenExchange, true, false},
		{"auto-without-caller-token", GrantAuto, false, GrantClientCredentials, true, false},
		{"jwt-bearer-with-caller-token", GrantJWTBearer, true, GrantJWTBearer, true, true},
		{"jwt-bearer-without-caller-token", GrantJWTBearer, false, GrantJWTBearer, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.grant.Effective(tt.callerToken); got != tt.want {
				t.Errorf("%s.Effective(%v) = %s, want %s", tt.grant, tt.callerToken, got, tt.want)
			}
			if got := tt.grant.NeedsToken(); got != tt.needsToken {
				t.Errorf("%s.NeedsToken() = %v, want %v", tt.grant, got, tt.needsToken)
			}
			if got := tt.grant.NeedsSubject(); got != tt.needsSubj {
				t.Errorf("%s.NeedsSubject() = %v, want %v", tt.grant, got, tt.needsSubj)
			}
		})
	}
}

func TestCallerAllowed(t *testing.T) {
	shop := []string{"spiffe://cluster.local/ns/shop/sa/checkout", "spiffe://cluster.local/ns/ops/*"}
	tests := []struct {
		name      string
		callers   []string
		principal string
		want      bool
	}{
		{"unset-allows-anyone", nil, "", true},
		{"unset-allows-any-principal", nil, "spiffe://x", true},
		{"exact", shop, "spiffe://cluster.local/ns/shop/sa/checkout", true},
		{"exact-is-not-prefix", shop, "spiffe://cluster.local/ns/shop/sa/checkout-2", false},
		{"prefix", shop, "spiffe://cluster.local/ns/ops/sa/deployer", true},
		{"prefix-needs-more", shop, "spiffe://cluster.local/ns/ops/", false},
		{"prefix-is-segment-bound", shop, "spiffe://cluster.local/ns/opsx/sa/a", false},
		{"other-namespace", shop, "spiffe://cluster.local/ns/web/sa/frontend", false},
		{"no-principal", shop, "", false},
		{"empty-list-allows-nobody", []string{}, "spiffe://cluster.local/ns/shop/sa/checkout", false},
		{"star-without-slash-is-literal", []string{"spiffe://a*"}, "spiffe://ab", false},
		{"case-matters", shop, "SPIFFE://cluster.local/ns/shop/sa/checkout", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CallerAllowed(tt.callers, tt.principal); got != tt.want {
				t.Errorf("CallerAllowed(%q, %q) = %v, want %v", tt.callers, tt.principal, got, tt.want)
			}
		})
	}
}

func TestHeadersToRemove(t *testing.T) {
	tests := []struct {
		name   string
		layers []Layer
		want   []string
	}{
		{"authorization-header-removes-nothing", nil, nil},
		{"other-header-removes-callers-authorization", []Layer{{Header: new("x-api-token")}}, []string{"authorization"}},
		{"explicit-list-replaces-default", []Layer{{Header: new("x-api-token"), RemoveHeaders: []string{"cookie"}}}, []string{"cookie"}},
		{"explicit-empty-keeps-authorization", []Layer{{Header: new("x-api-token"), RemoveHeaders: []string{}}}, []string{}},
		{"nearest-level-wins", []Layer{{RemoveHeaders: []string{"cookie"}}, {RemoveHeaders: []string{"x-api-key"}}}, []string{"x-api-key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Root(Layer{})
			for _, l := range tt.layers {
				s = s.Inherit(l)
			}
			if got := s.HeadersToRemove(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("HeadersToRemove() = %#v, want %#v", got, tt.want)
			}
		})
	}
}
