package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthz/tokenauthz/scopes"
)

const (
	accessToken = "urn:ietf:params:oauth:token-type:access_token"
	idToken     = "urn:ietf:params:oauth:token-type:id_token"
	jwtToken    = "urn:ietf:params:oauth:token-type:jwt"
)

// unset makes sure the environment variable name is not set during the test.
func unset(t *testing.T, name string) {
	t.Helper()
	t.Setenv(name, "") // restores the old value afterwards
	if err := os.Unsetenv(name); err != nil {
		t.Fatal(err)
	}
}

func TestLoadGood(t *testing.T) {
	t.Setenv("TOKENAUTHZ_CLIENT_SECRET", "defaults-s3cret")
	t.Setenv("BILLING_CLIENT_ID", "billing-invoices")
	t.Setenv("BILLING_INVOICES_SECRET", "invoices-s3cret")

	path := filepath.Join("testdata", "good.yaml")
	cfg, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}

	if cfg.Path != path {
		t.Errorf("Path = %q, want %q", cfg.Path, path)
	}
	if want := (Listen{GRPC: "127.0.0.1:19001", HTTP: "127.0.0.1:19002", Admin: "127.0.0.1:19003"}); cfg.Listen != want {
		t.Errorf("Listen = %+v, want %+v", cfg.Listen, want)
	}
	if cfg.Unmatched != UnmatchedAllow {
		t.Errorf("Unmatched = %q, want %q", cfg.Unmatched, UnmatchedAllow)
	}
	if want := (Cache{ExpirySkew: 10 * time.Second, RefreshBefore: 90 * time.Second, MaxEntries: 500, PurgeInterval: 10 * time.Second}); cfg.Cache != want {
		t.Errorf("Cache = %+v, want %+v", cfg.Cache, want)
	}
	if want := 5 * time.Second; cfg.TokenRequest.Timeout != want {
		t.Errorf("TokenRequest.Timeout = %v, want %v", cfg.TokenRequest.Timeout, want)
	}

	root := scopes.Settings{
		TokenEndpoint:    scopes.TokenEndpoint{Issuer: "http://127.0.0.1:4444/", TokenURL: "http://127.0.0.1:4444/oauth2/token"},
		ClientID:         "tokenauthz",
		Secret:           scopes.Secret{Value: "defaults-s3cret", Key: "defaults.client_secret"},
		ClientAuth:       scopes.ClientAuthBasic,
		Grant:            scopes.GrantNone,
		Scope:            []string{"a", "b"},
		SubjectTokenType: accessToken,
		Header:           "authorization",

		ClientAssertionType: scopes.DefaultClientAssertionType,
		ActorTokenType:      scopes.DefaultActorTokenType,
		HeaderFormat:        scopes.DefaultHeaderFormat,
	}
	if !reflect.DeepEqual(cfg.Routes.Root, root) {
		t.Errorf("Root =\n%#v\nwant\n%#v", cfg.Routes.Root, root)
	}

	orders := root
	orders.Grant = scopes.GrantClientCredentials
	orders.Scope = []string{"orders.read"}
	create := orders
	create.Scope = []string{"orders.write"}
	history := orders
	history.Grant = scopes.GrantTokenExchange
	history.Audience = "orders"

	billing := scopes.Settings{
		TokenEndpoint: scopes.TokenEndpoint{TokenURL: "https://idp.example/token"}, // no issuer from defaults
		ClientID:      "billing",
		Secret: scopes.Secret{
			Value: "billing-s3cret", // trimmed
			File:  "secrets/billing.secret",
			Key:   "services.billing.client_secret_file",
		},
		ClientAuth:         scopes.ClientAuthPost,
		Grant:              scopes.GrantAuto,
		Scope:              []string{"billing.read", "billing.write"},
		Resource:           "https://billing.internal/",
		SubjectTokenType:   accessToken,
		RequestedTokenType: jwtToken,
		Header:             "x-billing-token",

		ClientAssertionType: scopes.DefaultClientAssertionType,
		ActorTokenType:      scopes.DefaultActorTokenType,
		HeaderFormat:        scopes.DefaultHeaderFormat,
	}
	invoices := scopes.Settings{
		TokenEndpoint:      scopes.TokenEndpoint{Issuer: "https://idp.example/"}, // no token_url from the service
		ClientID:           "billing-invoices",
		Secret:             scopes.Secret{Value: "invoices-s3cret", Key: "services.billing.endpoints.invoices.client_secret"},
		ClientAuth:         scopes.ClientAuthBasic,
		Grant:              scopes.GrantAuto,
		Scope:              []string{},
		Audience:           "invoices",
		Resource:           "",
		SubjectTokenType:   idToken,
		RequestedTokenType: accessToken,
		Header:             "authorization",

		ClientAssertionType: scopes.DefaultClientAssertionType,
		ActorTokenType:      scopes.DefaultActorTokenType,
		HeaderFormat:        scopes.DefaultHeaderFormat,
	}
	public := billing
	public.Grant = scopes.GrantNone

	type endpoint struct {
		name, path string
		methods    []string
		settings   scopes.Settings
	}
	tests := []struct {
		name      string
		hosts     []string
		prefix    string
		settings  scopes.Settings
		endpoints []endpoint // longest path first
	}{
		{
			name: "billing", hosts: []string{"Billing.Internal"}, prefix: "/billing", settings: billing,
			endpoints: []endpoint{
				{"invoices", "/billing/invoices", []string{"GET", "PUT"}, invoices},
				{"public", "/billing/public", []string{}, public},
			},
		},
		{
			name: "orders", hosts: []string{"orders.internal", "orders.internal:8443"}, prefix: "/v1", settings: orders,
			endpoints: []endpoint{
				{"history", "/v1/orders/history", []string{}, history},
				{"short", "/v1/orders/short", []string{}, orders},
				{"create", "/v1/orders", []string{"POST"}, create},
			},
		},
	}
	services := cfg.Routes.Services()
	if len(services) != len(tests) {
		t.Fatalf("got %d services, want %d", len(services), len(tests))
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := services[i]
			if svc.Name != tt.name || !reflect.DeepEqual(svc.Hosts, tt.hosts) || svc.PathPrefix != tt.prefix {
				t.Errorf("service = %q hosts %q prefix %q, want %q hosts %q prefix %q",
					svc.Name, svc.Hosts, svc.PathPrefix, tt.name, tt.hosts, tt.prefix)
			}
			if !reflect.DeepEqual(svc.Settings, tt.settings) {
				t.Errorf("settings =\n%#v\nwant\n%#v", svc.Settings, tt.settings)
			}
			if len(svc.Endpoints) != len(tt.endpoints) {
				t.Fatalf("got %d endpoints, want %d", len(svc.Endpoints), len(tt.endpoints))
			}
			for j, want := range tt.endpoints {
				got := svc.Endpoints[j]
				if got.Name != want.name || got.Path != want.path || !reflect.DeepEqual(got.Methods, want.methods) {
					t.Errorf("endpoint %d = %q %q %q, want %q %q %q", j, got.Name, got.Path, got.Methods, want.name, want.path, want.methods)
				}
				if !reflect.DeepEqual(got.Settings, want.settings) {
					t.Errorf("endpoint %s settings =\n%#v\nwant\n%#v", want.name, got.Settings, want.settings)
				}
			}
		})
	}

	// The loaded table routes requests.
	m, err := cfg.Routes.Match(scopes.Request{Host: "billing.internal:443", Path: "/billing/invoices/7?x=1", Method: "put"})
	if err != nil || m.Service.Name != "billing" || m.EndpointName() != "invoices" {
		t.Errorf("Match = %s/%s, %v; want billing/invoices", m.Service.Name, m.EndpointName(), err)
	}
}

func TestLoadBad(t *testing.T) {
	tests := []struct {
		file string
		kind error
		want string // names the key path
	}{
		{"unknown-key-top", ErrUnknownKey, "line 1: listn: unknown key"},
		{"unknown-key-service", ErrUnknownKey, "services.orders.scopes: unknown key"},
		{"unknown-key-endpoint", ErrUnknownKey, "services.orders.endpoints.create.method: unknown key"},
		{"bad-grant-type", ErrInvalidValue, `services.orders.grant_type: "password" is not one of none, client_credentials, token_exchange, auto, jwt_bearer`},
		{"bad-client-auth", ErrInvalidValue, `defaults.client_auth: "jwt" is not one of basic, post, private_key_jwt, client_assertion, tls_client_auth, none`},
		{"bad-unmatched", ErrInvalidValue, `unmatched: "pass" is not one of deny, allow`},
		{"bad-duration", ErrInvalidValue, `cache.expiry_skew: "30 seconds" is not a duration`},
		{"zero-timeout", ErrInvalidValue, "token_request.timeout: must be positive"},
		{"ca-file-missing", ErrInvalidValue, "token_request.ca_file: open testdata/bad/no-such-ca.pem"},
		{"ca-file-not-pem", ErrInvalidValue, "token_request.ca_file: testdata/bad/ca-file-not-pem.yaml holds no PEM certificate"},
		{"negative-max-entries", ErrInvalidValue, "cache.max_entries: must be at least 1, got -1"},
		{"wrong-type", ErrInvalidValue, "cache.max_entries: cannot unmarshal"},
		{"missing-credentials", ErrMissingCredentials, "services.orders: grant_type client_credentials needs client_secret or client_secret_file"},
		{"missing-token-endpoint", ErrMissingCredentials, "services.orders: grant_type client_credentials needs issuer or token_url"},
		{"both-secrets", ErrInvalidValue, "defaults.client_secret: set client_secret or client_secret_file, not both"},
		{"empty-client-secret", ErrMissingCredentials, "defaults.client_secret: is empty"},
		{"unset-env", ErrEnv, "defaults.client_secret: environment variable TOKENAUTHZ_TEST_UNSET is not set"},
		{"missing-secret-file", ErrSecretFile, "services.orders.client_secret_file: open testdata/bad/no-such.secret"},
		{"duplicate-host", ErrDuplicateRoute, `services.orders-v2.hosts: "orders.internal" with path_prefix "/v1" is already claimed by service "orders"`},
		{"path-without-slash", ErrInvalidValue, `services.orders.endpoints.create.path: "orders" must start with /`},
		{"path-prefix-without-slash", ErrInvalidValue, `services.orders.path_prefix: "v1" must start with /`},
		{"bad-method", ErrInvalidValue, `services.orders.endpoints.create.methods: "POST ME" is not an HTTP method`},
		{"unknown-method", ErrInvalidValue, `services.orders.endpoints.create.methods: "PSOT" is not a method of the IANA HTTP Method Registry (a typo?); write an extension method as "ext:PSOT"`},
		{"bad-extension-method", ErrInvalidValue, `services.cache.endpoints.purge.methods: "ext:PURGE ALL": "PURGE ALL" is not an HTTP method token`},
		{"insecure-token-url", ErrInsecureHTTP, `defaults.token_url: "http://idp.internal/oauth2/token" is plain http to a host that is not loopback: the client secret and subject tokens would cross the network in clear; use https, or set allow_insecure_http: true beside it`},
		{"insecure-issuer", ErrInsecureHTTP, `services.orders.issuer: "http://login.orders.internal:8080/realms/orders" is plain http to a host that is not loopback: the discovery document`},
		{"allow-insecure-without-url", ErrInvalidValue, "services.orders.allow_insecure_http: applies to the issuer and token_url set at the same level, and this level sets neither"},
		{"bad-header", ErrInvalidValue, `defaults.header: "x token" is not a header name`},
		{"bad-issuer", ErrInvalidValue, `defaults.issuer: "idp.example" is not an absolute http(s) URL`},
		{"bad-host", ErrInvalidValue, `services.orders.hosts[1]: "orders.internal:http" is not a host or host:port`},
		{"non-ascii-host", ErrInvalidValue, `services.orders.hosts[1]: "ｏrders.internal" is not a host or host:port (ASCII only`},
		{"zero-max-in-flight", ErrInvalidValue, "token_request.max_in_flight: must be at least 1, got 0"},
		{"bad-scope-type", ErrInvalidValue, "services.orders.scope: want a list or a space-separated string"},
		{"repeated-key", ErrSyntax, "services.orders.grant_type: repeats the key set at line 9"},
		{"syntax-error", ErrSyntax, "invalid YAML: yaml: line"},
		{"key-file-missing", ErrCredentialFile, "defaults.client_key_file: unusable client key: open testdata/bad/no-such-key.pem: no such file"},
		{"key-file-not-a-key", ErrCredentialFile, "defaults.client_key_file: unusable client key: testdata/keys/ec.crt: no PEM private key"},
		{"alg-does-not-fit-key", ErrInvalidValue, "services.orders: client_assertion_alg: assertion algorithm does not fit the key: ES256 needs a key for EC P-256, the key is RSA 2048 (client_key_file testdata/keys/rsa.pem)"},
		{"bad-assertion-alg", ErrInvalidValue, `defaults.client_assertion_alg: "HS256" is not one of RS256, PS256, ES256, ES384`},
		{"cert-does-not-match-key", ErrInvalidValue, "services.mtls: client_cert_file testdata/keys/rsa.crt: certificate does not match the key"},
		{"cert-file-missing", ErrCredentialFile, "services.mtls.client_cert_file: unusable client certificate: open testdata/bad/no-such.crt"},
		{"unknown-assertion-type", ErrInvalidValue, `defaults.client_assertion_type: unknown client assertion type "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"`},
		{"missing-key-for-private-key-jwt", ErrMissingCredentials, "services.orders: grant_type client_credentials needs client_key_file (for client_auth private_key_jwt)"},
		{"missing-cert-for-tls-client-auth", ErrMissingCredentials, "services.orders: grant_type client_credentials needs client_cert_file (for client_auth tls_client_auth)"},
		{"missing-assertion-file", ErrMissingCredentials, "services.orders: grant_type jwt_bearer needs client_assertion_file (for client_auth client_assertion)"},
		{"token-params-protocol-name", ErrInvalidValue, "services.obo.token_params.scope: scope is set by the protocol"},
		{"shared-no-addresses", ErrInvalidValue, "cache.shared.addresses: at least one Redis address"},
		{"shared-bad-address", ErrInvalidValue, `cache.shared.addresses[0]: "redis.internal" is not host:port`},
		{"shared-both-passwords", ErrInvalidValue, "cache.shared.password: set password or password_file, not both"},
		{"shared-missing-keys-file", ErrInvalidValue, "cache.shared.keys_file: required"},
		{"shared-unreadable-keys-file", ErrSecretFile, "cache.shared.keys_file: open testdata/bad/no-such.keys"},
		{"shared-short-key", ErrSecretFile, "cache.shared.keys_file: testdata/bad/short.keys line 1: not a base64 32-byte key"},
		{"shared-cluster-db", ErrInvalidValue, "cache.shared.db: Redis Cluster (several addresses) has database 0 only, got 2"},
		{"shared-cert-without-key", ErrInvalidValue, "cache.shared.tls.cert_file: cert_file and key_file go together"},
		{"shared-zero-timeout", ErrInvalidValue, "cache.shared.timeout: must be positive"},
	}
	unset(t, "TOKENAUTHZ_TEST_UNSET")
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", "bad", tt.file+".yaml")
			cfg, err := Load(path)
			if err == nil {
				t.Fatalf("Load succeeded, want %v", tt.kind)
			}
			if cfg != nil {
				t.Errorf("Load returned a config with an error")
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("error = %v, want errors.Is %v", err, tt.kind)
			}
			if !strings.HasPrefix(err.Error(), path+": ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to start with %q and contain %q", err, path+": ", tt.want)
			}
			if n := len(problems(err)); n != 1 {
				t.Errorf("got %d problems, want 1 (the fixture should hold exactly one):\n%v", n, err)
			}
		})
	}
}

// TestLoadBadFixturesCovered keeps the table and testdata/bad in step.
func TestLoadBadFixturesCovered(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "bad", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	src, err := os.ReadFile("config_test.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		if !strings.Contains(string(src), `{"`+name+`", `) {
			t.Errorf("%s has no case in TestLoadBad", f)
		}
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	unset(t, "TOKENAUTHZ_TEST_UNSET")
	path := filepath.Join("testdata", "many-problems.yaml")
	_, err := Load(path)
	if err == nil {
		t.Fatal("Load succeeded")
	}
	want := []struct {
		kind error
		text string
	}{
		{ErrUnknownKey, "line 3: colour: unknown key"},
		{ErrInvalidValue, "cache.refresh_before"},
		{ErrInvalidValue, "cache.max_entries"},
		{ErrInvalidValue, "unmatched"},
		{ErrEnv, "defaults.client_secret: environment variable TOKENAUTHZ_TEST_UNSET"},
		{ErrInvalidValue, "defaults.header"},
		{ErrInvalidValue, "services.a.grant_type"},
		{ErrUnknownKey, "services.a.endpoints.e.methodz"},
		{ErrSecretFile, "services.b.client_secret_file"},
		{ErrDuplicateRoute, "services.b.hosts"},
		{ErrInvalidValue, "services.b.endpoints.e.path"},
		{ErrMissingCredentials, "services.c: grant_type token_exchange needs client_id"},
	}
	got := problems(err)
	if len(got) != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", len(got), len(want), err)
	}
	for _, w := range want {
		found := false
		for _, p := range got {
			if errors.Is(p, w.kind) && strings.Contains(p.Error(), w.text) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("no %v problem naming %q in:\n%v", w.kind, w.text, err)
		}
	}
	for _, p := range got {
		if !strings.HasPrefix(p.Error(), path+": ") {
			t.Errorf("problem %q does not name the file", p)
		}
	}
}

func TestParse(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "abs.secret")
	if err := os.WriteFile(secret, []byte("  abs-s3cret \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TOKENAUTHZ_TEST_DIR", dir)
	unset(t, "TOKENAUTHZ_TEST_UNSET")

	tests := []struct {
		name  string
		yaml  string
		check func(t *testing.T, cfg *Config)
		kind  error  // want this error instead
		want  string // in the error
	}{
		{
			name: "empty-file-gets-built-in-defaults",
			yaml: "",
			check: func(t *testing.T, cfg *Config) {
				want := Config{Path: "x.yaml", Listen: defaults.Listen, Unmatched: UnmatchedDeny, Cache: defaults.Cache, TokenRequest: defaults.TokenRequest,
					Warnings: []string{"x.yaml: services: no services configured: every request is unmatched and denied 403 (unmatched: deny)"}}
				cfg.Routes, cfg.creds = nil, nil
				if !reflect.DeepEqual(*cfg, want) {
					t.Errorf("got %+v, want %+v", *cfg, want)
				}
			},
		},
		{
			name: "admin-listener-defaults-to-loopback",
			yaml: "listen: {grpc: '0.0.0.0:9001', http: '0.0.0.0:9002'}",
			check: func(t *testing.T, cfg *Config) {
				if want := (Listen{GRPC: "0.0.0.0:9001", HTTP: "0.0.0.0:9002", Admin: "127.0.0.1:9003"}); cfg.Listen != want {
					t.Errorf("Listen = %+v, want %+v", cfg.Listen, want)
				}
			},
		},
		{
			name: "absolute-secret-file-from-env",
			yaml: "defaults: {grant_type: client_credentials, token_url: 'https://idp/t', client_id: c, client_secret_file: '${TOKENAUTHZ_TEST_DIR}/abs.secret'}\nservices: {s: {}}",
			check: func(t *testing.T, cfg *Config) {
				want := scopes.Secret{Value: "abs-s3cret", File: secret, Key: "defaults.client_secret_file"}
				if got := cfg.Routes.Root.Secret; got != want {
					t.Errorf("secret = %+v, want %+v", got, want)
				}
			},
		},
		{
			name: "scope-string-and-empty-forms",
			yaml: "defaults: {scope: ' a  b,c '}\nservices: {s: {scope: '', endpoints: {e: {path: /e, scope: []}, f: {path: /f}}}}",
			check: func(t *testing.T, cfg *Config) {
				if got := cfg.Routes.Root.Scope; !reflect.DeepEqual(got, []string{"a", "b,c"}) {
					t.Errorf("defaults scope = %q", got)
				}
				svc := cfg.Routes.Services()[0]
				for _, s := range []scopes.Settings{svc.Settings, svc.Endpoints[0].Settings, svc.Endpoints[1].Settings} {
					if s.Scope == nil || len(s.Scope) != 0 {
						t.Errorf("scope = %#v, want explicitly empty", s.Scope)
					}
				}
			},
		},
		{
			name: "null-key-inherits",
			yaml: "defaults: {audience: a}\nservices: {s: {audience: }}",
			check: func(t *testing.T, cfg *Config) {
				if got := cfg.Routes.Services()[0].Settings.Audience; got != "a" {
					t.Errorf("audience = %q, want inherited a", got)
				}
			},
		},
		{
			name: "anchors-and-merge-keys",
			yaml: "x-common: &common {client_id: c, grant_type: none}\n",
			kind: ErrUnknownKey, want: "x-common: unknown key",
		},
		{
			name: "merge-key-into-service",
			yaml: "services:\n  a: &a {hosts: [a], grant_type: none, scope: s}\n  b:\n    <<: *a\n    hosts: [b]\n",
			check: func(t *testing.T, cfg *Config) {
				b := cfg.Routes.Services()[1]
				if b.Name != "b" || !reflect.DeepEqual(b.Hosts, []string{"b"}) || !reflect.DeepEqual(b.Settings.Scope, []string{"s"}) {
					t.Errorf("service b = %+v", b)
				}
			},
		},
		{
			name: "merge-key-unknown-key-reported",
			yaml: "services:\n  a: &a {hosts: [a], colour: red}\n  b:\n    <<: *a\n    hosts: [b]\n",
			kind: ErrUnknownKey, want: "line 2: services.a.colour: unknown key",
		},
		{
			name: "endpoint-inherits-service-gap-reported-once",
			yaml: "services:\n  s:\n    grant_type: client_credentials\n    endpoints: {a: /a, b: /b}\n",
			kind: ErrMissingCredentials, want: "services.s: grant_type client_credentials needs issuer or token_url, client_id, client_secret or client_secret_file",
		},
		{
			name: "unset-env-in-issuer-reported-once",
			yaml: "defaults: {issuer: '${TOKENAUTHZ_TEST_UNSET}/x'}",
			kind: ErrEnv, want: "defaults.issuer: environment variable TOKENAUTHZ_TEST_UNSET is not set",
		},
		{
			name: "unset-env-in-secret-file-reported-once",
			yaml: "defaults: {client_secret_file: '${TOKENAUTHZ_TEST_UNSET}/s'}",
			kind: ErrEnv, want: "defaults.client_secret_file: environment variable TOKENAUTHZ_TEST_UNSET is not set",
		},
		{
			name: "empty-secret-file",
			yaml: "defaults: {client_secret_file: ''}",
			kind: ErrSecretFile, want: "defaults.client_secret_file: empty file name",
		},
		{
			name: "top-level-list",
			yaml: "- a\n- b\n",
			kind: ErrInvalidValue, want: "(top level): cannot unmarshal",
		},
		{
			name: "short-form-endpoint-without-slash",
			yaml: "services: {s: {endpoints: {e: e}}}",
			kind: ErrInvalidValue, want: "services.s.endpoints.e.path",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("x.yaml", []byte(tt.yaml))
			if tt.kind != nil {
				if !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("error = %v, want %v containing %q", err, tt.kind, tt.want)
				}
				if n := len(problems(err)); n != 1 {
					t.Errorf("got %d problems, want 1:\n%v", n, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.check(t, cfg)
		})
	}
}

// TestParseMethods: registered methods in any case, extension methods
// behind ext:, and nothing else.
func TestParseMethods(t *testing.T) {
	tests := []struct {
		name    string
		methods string
		want    []string // as matching sees them; nil: an error
		match   string   // a request method the endpoint must take
	}{
		{"registered", "[GET, POST, PATCH, PROPFIND, VERSION-CONTROL]", []string{"GET", "POST", "PATCH", "PROPFIND", "VERSION-CONTROL"}, "PROPFIND"},
		{"registered-any-case", "[get, Delete]", []string{"GET", "DELETE"}, "delete"},
		{"space-separated-string", "'GET HEAD'", []string{"GET", "HEAD"}, "HEAD"},
		{"extension-in-a-flow-list", "[ext:PURGE]", []string{"PURGE"}, "PURGE"},
		{"extension-quoted", `["ext:QUERY", GET]`, []string{"QUERY", "GET"}, "QUERY"},
		{"extension-of-a-registered-name", "[ext:GET]", []string{"GET"}, "GET"},
		{"typo", "[PSOT]", nil, ""},
		{"unregistered-lower-case", "[purge]", nil, ""},
		{"extension-marker-alone", "['ext:']", nil, ""},
		{"marker-in-capitals-is-no-marker", "['EXT:PURGE']", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("x.yaml", []byte("services: {s: {hosts: [s], endpoints: {e: {path: /e, methods: "+tt.methods+"}}}}"))
			if tt.want == nil {
				if !errors.Is(err, ErrInvalidValue) || !strings.Contains(err.Error(), "services.s.endpoints.e.methods: ") {
					t.Fatalf("error = %v, want an invalid services.s.endpoints.e.methods", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ep := cfg.Routes.Services()[0].Endpoints[0]
			if !reflect.DeepEqual(ep.Methods, tt.want) {
				t.Errorf("methods = %q, want %q", ep.Methods, tt.want)
			}
			m, err := cfg.Routes.Match(scopes.Request{Host: "s", Path: "/e", Method: tt.match})
			if err != nil || m.EndpointName() != "e" {
				t.Errorf("a %s request matched endpoint %q, %v; want e", tt.match, m.EndpointName(), err)
			}
		})
	}
}

// TestParseInsecureHTTP: plain http carries the secret only to loopback,
// unless allow_insecure_http is set beside the URL.
func TestParseInsecureHTTP(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		err  string // "" when accepted; else the key that fails
	}{
		{"https", "defaults: {token_url: 'https://idp.example/token'}", ""},
		{"loopback-v4", "defaults: {token_url: 'http://127.0.0.1:4444/token'}", ""},
		{"loopback-v4-range", "defaults: {issuer: 'http://127.1.2.3/'}", ""},
		{"loopback-v6", "defaults: {token_url: 'http://[::1]:4444/token'}", ""},
		{"localhost", "defaults: {issuer: 'http://LocalHost:8080/realms/x'}", ""},
		{"localhost-trailing-dot", "defaults: {issuer: 'http://localhost.:8080/'}", ""},
		{"opt-in-beside-the-url", "defaults: {token_url: 'http://keycloak:8080/token', allow_insecure_http: true}", ""},
		{"opt-in-at-the-service", "services: {s: {issuer: 'http://keycloak:8080/', allow_insecure_http: true}}", ""},
		{"opt-in-at-the-endpoint", "services: {s: {endpoints: {e: {path: /e, token_url: 'http://idp/t', allow_insecure_http: true}}}}", ""},
		{"remote-token-url", "defaults: {token_url: 'http://idp.internal/token'}", "defaults.token_url"},
		{"remote-issuer", "defaults: {issuer: 'http://idp.internal/'}", "defaults.issuer"},
		{"ip-not-loopback", "services: {s: {token_url: 'http://192.0.2.1/token'}}", "services.s.token_url"},
		{"localhost-lookalike", "defaults: {token_url: 'http://localhost.evil.example/token'}", "defaults.token_url"},
		{"opt-in-false", "defaults: {token_url: 'http://idp/t', allow_insecure_http: false}", "defaults.token_url"},
		{"opt-in-does-not-cover-children", "defaults: {issuer: 'http://a/', allow_insecure_http: true}\nservices: {s: {token_url: 'http://b/t'}}", "services.s.token_url"},
		{"from-env", "defaults: {token_url: '${TOKENAUTHZ_TEST_IDP}/token'}", "defaults.token_url"},
	}
	t.Setenv("TOKENAUTHZ_TEST_IDP", "http://idp.internal")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("x.yaml", []byte(tt.yaml))
			if tt.err == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInsecureHTTP) || !strings.Contains(err.Error(), "x.yaml: "+tt.err+": ") || len(problems(err)) != 1 {
				t.Fatalf("error = %v, want one ErrInsecureHTTP at %s", err, tt.err)
			}
		})
	}
}

// TestParseWarnings: what loads but likely misleads is a warning, not an
// error, each naming the file and key.
func TestParseWarnings(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"no-services", "unmatched: allow", []string{"x.yaml: services: no services configured: every request is unmatched and passed through untouched (unmatched: allow)"}},
		{"empty-services", "services: {}", []string{"x.yaml: services: no services configured: every request is unmatched and denied 403 (unmatched: deny)"}},
		{"trailing-dot", "services: {s: {hosts: [s, 'orders.', 'orders.internal.:8443', '[::1]']}}", []string{
			`x.yaml: services.s.hosts[1]: "orders." is matched as "orders": a trailing dot is dropped from configured and request hosts alike; write it without the dot`,
			`x.yaml: services.s.hosts[2]: "orders.internal.:8443" is matched as "orders.internal:8443": a trailing dot is dropped`,
		}},
		{"none", "services: {s: {hosts: [s, 'a.b:80']}}", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("x.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.Warnings) != len(tt.want) {
				t.Fatalf("warnings = %q, want %d", cfg.Warnings, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(cfg.Warnings[i], w) {
					t.Errorf("warning %d = %q, want %q", i, cfg.Warnings[i], w)
				}
			}
		})
	}
}

func TestValidHost(t *testing.T) {
	tests := []struct {
		host string
		ok   bool
	}{
		{"orders.internal", true},
		{"Orders.Internal:8443", true},
		{"10.0.0.1:80", true},
		{"[::1]", true},
		{"[2001:db8::1]:8443", true},
		{"2001:db8::1", true},
		{"", false},
		{"orders.internal:", false},
		{"orders.internal:0", false},
		{"orders.internal:65536", false},
		{":8443", false},
		{"orders internal", false},
		{"orders.internal/v1", false},
		{"user@orders.internal", false},
		{"[::1", false},
		{"[::1]x", false},
		{"[orders]", false},
		{"a:b:c", false},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			if got := validHost(tt.host); got != tt.ok {
				t.Errorf("validHost(%q) = %v, want %v", tt.host, got, tt.ok)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error = %v, want os.ErrNotExist", err)
	}
}

// problems splits the joined error Load returns into its problems.
func problems(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// FuzzParse checks that no input makes Parse panic, and that it returns
// either a config or problems, never both.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*", "*.yaml"))
	more, _ := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	for _, file := range append(files, more...) {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("a: &a [*a]\nservices: {s: {<<: *a}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data)
		if (cfg == nil) == (err == nil) {
			t.Fatalf("Parse = %v, %v: want exactly one", cfg, err)
		}
	})
}
