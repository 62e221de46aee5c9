// Package config loads tokenauthz's YAML configuration: it decodes strictly,
// expands ${VAR} references, reads secret files, fills defaults, resolves
// inheritance (defaults -> service -> endpoint) and validates once, reporting
// every problem with its file and key path.
package config

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tokenauthz/tokenauthz/scopes"
)

// Problem kinds; every reported problem wraps one of them (test with errors.Is).
var (
	ErrSyntax             = errors.New("invalid YAML")
	ErrUnknownKey         = errors.New("unknown key")
	ErrInvalidValue       = errors.New("invalid value")
	ErrMissingCredentials = errors.New("missing credentials")
	ErrDuplicateRoute     = errors.New("duplicate route")
	ErrEnv                = errors.New("environment variable not set")
	ErrSecretFile         = errors.New("unreadable secret file")
	ErrInsecureHTTP       = errors.New("credentials in clear")
)

// Unmatched says what to do with a request no service matches.
type Unmatched string

const (
	UnmatchedDeny  Unmatched = "deny"  // 403
	UnmatchedAllow Unmatched = "allow" // pass through untouched
)

// Config is a loaded, validated configuration.
type Config struct {
	Path         string
	Listen       Listen
	Unmatched    Unmatched
	Cache        Cache
	TokenRequest TokenRequest
	Routes       *scopes.Table

	creds map[*scopes.Settings]*Credentials // per level of Routes, see Credentials
	// Warnings are things that load but are likely not what was meant (no
	// services, a host with a trailing dot), each "file: key: why".
	// validate prints them and serve logs them; neither fails on them.
	Warnings []string
}

// Listen holds the listener addresses. Admin serves the status page: only
// operators should reach it, so it defaults to loopback. Pprof adds Go's
// runtime profiles to it.
type Listen struct {
	GRPC, HTTP, Admin string
	Pprof             bool
}

// Cache holds the token cache settings.
type Cache struct {
	ExpirySkew    time.Duration // a token is dropped this long before it expires
	RefreshBefore time.Duration // a token this close to expiry is refreshed in the background
	MaxEntries    int
	PurgeInterval time.Duration // a key is dropped for a backend's 401 at most this often
	Prewarm       bool          // fetch every client-credentials token the config names at startup and after each reload
	Shared        *SharedCache  // the second tier in Redis; nil: in-process only
}

// TokenRequest holds the settings of calls to token endpoints.
type TokenRequest struct {
	Timeout time.Duration
	// MaxInFlight bounds the token requests under way at once (and the
	// connections to each token endpoint).
	MaxInFlight int
	// CAFile names extra PEM certificates trusted for token endpoints and
	// discovery, besides the system's; RootCAs is the resulting pool (nil:
	// the system's only). TLS verification is never off.
	CAFile  string
	RootCAs *x509.CertPool
}

// Built-in defaults for keys the file leaves out.
var defaults = Config{
	Listen:       Listen{GRPC: "127.0.0.1:9001", HTTP: "127.0.0.1:9002", Admin: "127.0.0.1:9003"},
	Unmatched:    UnmatchedDeny,
	Cache:        Cache{ExpirySkew: 30 * time.Second, RefreshBefore: 60 * time.Second, MaxEntries: 100000, PurgeInterval: 10 * time.Second},
	TokenRequest: TokenRequest{Timeout: 3 * time.Second, MaxInFlight: 64},
}

// Load reads and validates the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse validates data as if read from the file name. Every problem found is
// returned, joined, each prefixed with name.
func Parse(name string, data []byte) (*Config, error) {
	cfg, errs := parse(name, data)
	if len(errs) == 0 {
		cfg.Path = name
		for i, w := range cfg.Warnings {
			cfg.Warnings[i] = name + ": " + w
		}
	} else {
		for i, err := range errs {
			errs[i] = fmt.Errorf("%s: %w", name, err)
		}
		return nil, errors.Join(errs...)
	}
	return cfg, nil
}

func parse(name string, data []byte) (*Config, []error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, []error{fmt.Errorf("%w: %v", ErrSyntax, err)}
	}
	errs := checkTree(&doc, reflect.TypeFor[rawFile](), "")
	var raw rawFile
	if len(doc.Content) > 0 {
		// Type errors leave their field unset and decoding goes on, so the
		// builder still reports the other problems. checkTree has already
		// named each with its key; the decoder's own message is the fallback.
		var te *yaml.TypeError
		switch err := doc.Decode(&raw); {
		case err == nil:
		case errors.As(err, &te):
			if len(errs) == 0 {
				errs = append(errs, fmt.Errorf("%w: %v", ErrInvalidValue, err))
			}
		default:
			return nil, append(errs, fmt.Errorf("%w: %v", ErrInvalidValue, err))
		}
	}
	b := newBuilder(filepath.Dir(name))
	for _, err := range errs {
		if ke, ok := err.(*keyError); ok {
			b.reported[ke.Key] = true
		}
	}
	cfg := b.build(raw)
	cfg.Warnings = b.warnings
	return cfg, append(errs, b.errs...)
}

// sortedKeys returns a map's keys in order, so problems are listed stably.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
