package config

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokenauthz/tokenauthz/scopes"
	"github.com/tokenauthz/tokenauthz/tokens"
)

// builder turns the raw file into a Config, collecting problems as it goes.
type builder struct {
	dir      string          // the config file's folder: relative secret files are read from here
	reported map[string]bool // keys whose value failed to decode: already reported
	errs     []error
	warnings []string

	// Credentials (credentials.go): built once per level, shared where equal.
	fileKeys   map[string]string // resolved credential file -> the key that first named it
	auths      map[authSpec]tokens.ClientAuth
	tokenFiles map[string]*tokens.TokenFile
	creds      map[*scopes.Settings]*Credentials
}

func newBuilder(dir string) *builder {
	return &builder{dir: dir, reported: map[string]bool{}, fileKeys: map[string]string{},
		auths: map[authSpec]tokens.ClientAuth{}, tokenFiles: map[string]*tokens.TokenFile{},
		creds: map[*scopes.Settings]*Credentials{}}
}

// fail records a problem at key, unless decoding already reported one there:
// a value that failed to decode is left zero, which is no second problem.
func (b *builder) fail(key string, kind error, format string, args ...any) {
	if b.reported[key] {
		return
	}
	b.errs = append(b.errs, problem(key, 0, kind, format, args...))
}

func (b *builder) build(raw rawFile) *Config {
	cfg := defaults
	cfg.Listen.GRPC = or(raw.Listen.GRPC, cfg.Listen.GRPC)
	cfg.Listen.HTTP = or(raw.Listen.HTTP, cfg.Listen.HTTP)
	cfg.Listen.Admin = or(raw.Listen.Admin, cfg.Listen.Admin)
	cfg.Listen.Pprof = raw.Listen.Pprof
	switch u := Unmatched(or(raw.Unmatched, string(cfg.Unmatched))); u {
	case UnmatchedDeny, UnmatchedAllow:
		cfg.Unmatched = u
	default:
		b.fail("unmatched", ErrInvalidValue, "%q is not one of deny, allow", u)
	}
	b.duration("cache.expiry_skew", raw.Cache.ExpirySkew, &cfg.Cache.ExpirySkew, false)
	b.duration("cache.refresh_before", raw.Cache.RefreshBefore, &cfg.Cache.RefreshBefore, false)
	b.duration("cache.purge_interval", raw.Cache.PurgeInterval, &cfg.Cache.PurgeInterval, true)
	b.duration("token_request.timeout", raw.TokenRequest.Timeout, &cfg.TokenRequest.Timeout, true)
	if f := raw.TokenRequest.CAFile; f != nil {
		cfg.TokenRequest.CAFile, cfg.TokenRequest.RootCAs = b.caFile("token_request.ca_file", b.expand("token_request.ca_file", f))
	}
	if n := raw.TokenRequest.MaxInFlight; n != nil {
		if *n < 1 {
			b.fail("token_request.max_in_flight", ErrInvalidValue, "must be at least 1, got %d", *n)
		}
		cfg.TokenRequest.MaxInFlight = *n
	}
	if raw.Cache.Prewarm != nil {
		cfg.Cache.Prewarm = *raw.Cache.Prewarm
	}
	if raw.Cache.Shared != nil {
		cfg.Cache.Shared = b.shared(raw.Cache.Shared)
	}
	if n := raw.Cache.MaxEntries; n != nil {
		if *n < 1 {
			b.fail("cache.max_entries", ErrInvalidValue, "must be at least 1, got %d", *n)
		}
		cfg.Cache.MaxEntries = *n
	}

	root := b.layer("defaults", raw.Defaults)
	if len(raw.Services) == 0 {
		b.warnNoServices(cfg.Unmatched)
	}
	var specs []scopes.ServiceSpec
	for _, name := range sortedKeys(raw.Services) {
		specs = append(specs, b.service(name, raw.Services[name]))
	}
	table, err := scopes.NewTable(root, specs)
	for _, e := range unjoin(err) {
		b.errs = append(b.errs, fmt.Errorf("%w: %w", ErrDuplicateRoute, e))
	}
	for _, svc := range table.Services() {
		key := "services." + svc.Name
		svcMissing := b.credentials(key, &svc.Settings, "")
		b.shaping(key, svc.Settings)
		for _, ep := range svc.Endpoints {
			b.credentials(key+".endpoints."+ep.Name, &ep.Settings, svcMissing)
			b.shaping(key+".endpoints."+ep.Name, ep.Settings)
		}
	}
	cfg.Routes = table
	cfg.creds = b.creds
	return &cfg
}

func (b *builder) duration(key string, d *duration, dst *time.Duration, positive bool) {
	if d == nil {
		return
	}
	if *d < 0 || (positive && *d == 0) {
		b.fail(key, ErrInvalidValue, "must be positive, got %s", time.Duration(*d))
	}
	*dst = time.Duration(*d)
}

func (b *builder) service(name string, raw rawService) scopes.ServiceSpec {
	key := "services." + name
	if raw.PathPrefix != "" && !strings.HasPrefix(raw.PathPrefix, "/") {
		b.fail(key+".path_prefix", ErrInvalidValue, "%q must start with /", raw.PathPrefix)
	}
	for i, h := range raw.Hosts {
		if !validHost(h) {
			b.fail(fmt.Sprintf("%s.hosts[%d]", key, i), ErrInvalidValue, "%q is not a host or host:port (ASCII only: write an internationalized name in its xn-- form)", h)
		} else {
			b.warnTrailingDot(fmt.Sprintf("%s.hosts[%d]", key, i), h)
		}
	}
	for i, r := range raw.Routes {
		if err := checkRouteID(r); err != nil {
			b.fail(fmt.Sprintf("%s.routes[%d]", key, i), ErrInvalidValue, "%q %v", r, err)
		}
	}
	spec := scopes.ServiceSpec{Name: name, Hosts: raw.Hosts, Routes: raw.Routes, PathPrefix: raw.PathPrefix, Layer: b.layer(key, raw.rawAuth)}
	for _, epName := range sortedKeys(raw.Endpoints) {
		ep := raw.Endpoints[epName]
		epKey := key + ".endpoints." + epName
		if !strings.HasPrefix(ep.Path, "/") {
			b.fail(epKey+".path", ErrInvalidValue, "%q must start with /", ep.Path)
		}
		var methods []string
		if ep.Methods != nil {
			methods = make([]string, len(ep.Methods))
		}
		for i, m := range ep.Methods {
			methods[i] = b.method(epKey+".methods", m)
		}
		spec.Endpoints = append(spec.Endpoints, scopes.EndpointSpec{
			Name: epName, Path: ep.Path, Methods: methods, Layer: b.layer(epKey, ep.rawAuth),
		})
	}
	return spec
}

// layer converts one level's auth keys, checking each value it can check alone.
func (b *builder) layer(key string, raw rawAuth) scopes.Layer {
	var l scopes.Layer
	insecureOK := raw.AllowInsecureHTTP != nil && *raw.AllowInsecureHTTP
	if raw.Issuer != nil || raw.TokenURL != nil {
		l.TokenEndpoint = &scopes.TokenEndpoint{
			Issuer:   b.url(key+".issuer", raw.Issuer, insecureOK),
			TokenURL: b.url(key+".token_url", raw.TokenURL, insecureOK),
		}
	} else if raw.AllowInsecureHTTP != nil {
		b.fail(key+".allow_insecure_http", ErrInvalidValue, "applies to the issuer and token_url set at the same level, and this level sets neither")
	}
	l.ClientID = ptr(raw.ClientID, b.expand(key+".client_id", raw.ClientID))
	switch {
	case raw.ClientSecret != nil && raw.ClientSecretFile != nil:
		b.fail(key+".client_secret", ErrInvalidValue, "set client_secret or client_secret_file, not both")
		l.Secret = &scopes.Secret{Key: key + ".client_secret"} // set, so no "missing" problem follows
	case raw.ClientSecret != nil:
		k := key + ".client_secret"
		v, ok := b.expandOK(k, raw.ClientSecret)
		if v == "" && ok {
			b.fail(k, ErrMissingCredentials, "is empty")
		}
		l.Secret = &scopes.Secret{Value: v, Key: k}
	case raw.ClientSecretFile != nil:
		k := key + ".client_secret_file"
		l.Secret = &scopes.Secret{Key: k}
		if file, ok := b.expandOK(k, raw.ClientSecretFile); ok {
			l.Secret.File, l.Secret.Value = file, b.readSecret(k, file)
		}
	}
	if raw.ClientAuth != nil {
		ca := scopes.ClientAuth(*raw.ClientAuth)
		if !slices.Contains(scopes.ClientAuths, ca) {
			b.fail(key+".client_auth", ErrInvalidValue, "%q is not one of %s", ca, list(scopes.ClientAuths))
		}
		l.ClientAuth = &ca
	}
	if raw.GrantType != nil {
		g := scopes.Grant(*raw.GrantType)
		if !slices.Contains(scopes.Grants, g) {
			b.fail(key+".grant_type", ErrInvalidValue, "%q is not one of %s", g, list(scopes.Grants))
		}
		l.Grant = &g
	}
	if raw.Scope != nil {
		l.Scope = []string(*raw.Scope)
	}
	l.Audience = ptr(raw.Audience, b.expand(key+".audience", raw.Audience))
	l.Resource = ptr(raw.Resource, b.expand(key+".resource", raw.Resource))
	l.SubjectTokenType = raw.SubjectTokenType
	l.RequestedTokenType = raw.RequestedTokenType
	if raw.Header != nil {
		h := strings.ToLower(*raw.Header)
		if !isToken(h) {
			b.fail(key+".header", ErrInvalidValue, "%q is not a header name", *raw.Header)
		}
		l.Header = &h
	}
	b.secretless(key, raw, &l)
	if f := raw.HeaderFormat; f != nil {
		if err := checkHeaderFormat(*f); err != nil {
			b.fail(key+".header_format", ErrInvalidValue, "%q %v", *f, err)
		}
		l.HeaderFormat = f
	}
	if raw.Callers != nil {
		for i, c := range *raw.Callers {
			if err := checkCaller(c); err != nil {
				b.fail(fmt.Sprintf("%s.callers[%d]", key, i), ErrInvalidValue, "%q %v", c, err)
			}
		}
		l.Callers = []string(*raw.Callers)
	}
	if raw.RemoveHeaders != nil {
		l.RemoveHeaders = make([]string, len(*raw.RemoveHeaders))
		for i, h := range *raw.RemoveHeaders {
			l.RemoveHeaders[i] = strings.ToLower(h)
			if !isToken(h) || strings.EqualFold(h, "host") {
				b.fail(fmt.Sprintf("%s.remove_headers[%d]", key, i), ErrInvalidValue, "%q is not a header Envoy can remove", h)
			}
		}
	}
	return l
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expand replaces ${VAR} with the environment's value; an unset VAR is a problem.
func (b *builder) expand(key string, s *string) string {
	v, _ := b.expandOK(key, s)
	return v
}

// expandOK is expand that also reports whether every VAR was set, so callers
// do not pile a second, misleading problem on a half-expanded value.
func (b *builder) expandOK(key string, s *string) (string, bool) {
	if s == nil {
		return "", true
	}
	ok := true
	v := envRef.ReplaceAllStringFunc(*s, func(ref string) string {
		name := envRef.FindStringSubmatch(ref)[1]
		v, set := os.LookupEnv(name)
		if !set {
			b.fail(key, ErrEnv, "environment variable %s is not set", name)
			ok = false
			return ref // keep "${VAR}": no second problem about an empty value
		}
		return v
	})
	return v, ok
}

func (b *builder) readSecret(key, file string) string {
	if file == "" {
		b.fail(key, ErrSecretFile, "empty file name")
		return ""
	}
	if !filepath.IsAbs(file) {
		file = filepath.Join(b.dir, file)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		b.fail(key, ErrSecretFile, "%v", err)
		return ""
	}
	secret := strings.TrimSpace(string(data))
	if secret == "" {
		b.fail(key, ErrSecretFile, "%s is empty", file)
	}
	return secret
}

// caFile reads PEM certificates and adds them to the system's pool.
func (b *builder) caFile(key, file string) (string, *x509.CertPool) {
	if file == "" {
		b.fail(key, ErrInvalidValue, "empty file name")
		return "", nil
	}
	if !filepath.IsAbs(file) {
		file = filepath.Join(b.dir, file)
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		b.fail(key, ErrInvalidValue, "%v", err)
		return file, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		b.fail(key, ErrInvalidValue, "%s holds no PEM certificate", file)
		return file, nil
	}
	return file, pool
}

// url expands and checks an issuer or token URL: absolute http(s), and
// https unless the host is loopback or insecureOK (allow_insecure_http).
func (b *builder) url(key string, raw *string, insecureOK bool) string {
	s, ok := b.expandOK(key, raw)
	if s == "" || !ok {
		return s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		b.fail(key, ErrInvalidValue, "%q is not an absolute http(s) URL", s)
		return s
	}
	if u.Scheme == "http" && !insecureOK && !loopback(u.Hostname()) {
		b.fail(key, ErrInsecureHTTP, "%q is plain http to a host that is not loopback: %s would cross the network in clear; use https, or set allow_insecure_http: true beside it",
			s, inClear(key))
	}
	return s
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// ptr returns &v when the key was set, nil when it was not.
func ptr(set *string, v string) *string {
	if set == nil {
		return nil
	}
	return &v
}

func list[T ~string](vs []T) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}

// validHost reports whether h is "host", "host:port", "[v6]", "[v6]:port" or
// a bare IPv6 literal, with a port (when given) in 1-65535.
func validHost(h string) bool {
	if !scopes.ValidHostChars(h) {
		return false // requests holding such bytes match nothing: see scopes.ValidHostChars
	}
	if !strings.HasPrefix(h, "[") && strings.Count(h, ":") > 1 {
		return net.ParseIP(h) != nil
	}
	host := h
	if i := strings.LastIndexByte(h, ':'); i > strings.LastIndexByte(h, ']') {
		host = h[:i]
		if n, err := strconv.Atoi(h[i+1:]); err != nil || n < 1 || n > 65535 {
			return false
		}
	}
	if v6, ok := strings.CutPrefix(host, "["); ok {
		v6, ok = strings.CutSuffix(v6, "]")
		return ok && strings.Contains(v6, ":") && net.ParseIP(v6) != nil
	}
	return host != "" && !strings.ContainsAny(host, "[]:")
}

// isToken reports whether s is an RFC 9110 token (header and method names).
func isToken(s string) bool {
	return s != "" && strings.IndexFunc(s, func(r rune) bool {
		return r <= 0x20 || r >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r)
	}) < 0
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err != nil {
		return []error{err}
	}
	return nil
}
