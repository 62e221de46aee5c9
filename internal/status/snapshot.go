package status

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/scopes"
)

// Snapshot is the page's data, /status.json as it is.
type Snapshot struct {
	Version   string    `json:"version"`
	Generated time.Time `json:"generated"`
	Config    Config    `json:"config"`
	Ready     bool      `json:"ready"`
	NotReady  string    `json:"not_ready"` // why not, as /readyz says
	Issuers   []Issuer  `json:"issuers"`
	Unmatched string    `json:"unmatched"`
	Services  []Service `json:"services"`
	Shared    *Shared   `json:"shared_cache"` // null without cache.shared
	Denials   []Denial  `json:"denials"`      // newest first
}

// Config is the configuration file in effect and its latest load.
type Config struct {
	File       string `json:"file"`
	LastReload Load   `json:"last_reload"`
}

// Issuer is one issuer the configuration discovers.
type Issuer struct {
	Issuer     string `json:"issuer"`
	Discovered bool   `json:"discovered"`
	LastError  string `json:"last_error"` // of the latest attempt, while not discovered
}

// Service is one configured service: how requests select it, its settings,
// its endpoints and what the cache holds for it.
type Service struct {
	Name       string     `json:"name"`
	Hosts      []string   `json:"hosts"`
	PathPrefix string     `json:"path_prefix"`
	Routes     []string   `json:"routes"` // route identities it claims
	Settings   Level      `json:"settings"`
	Endpoints  []Endpoint `json:"endpoints"`
	Cache      CacheState `json:"cache"`
}

// Endpoint is one endpoint of a service.
type Endpoint struct {
	Name     string   `json:"name"`
	Path     string   `json:"path"`    // full path, the service's prefix included
	Methods  []string `json:"methods"` // empty: any
	Settings Level    `json:"settings"`
}

// Level is the settings in effect at a service or an endpoint. Client
// fields are empty when its grant fetches no token.
type Level struct {
	Grant      string   `json:"grant"`
	Scope      []string `json:"scope"`
	Audience   string   `json:"audience"`
	Issuer     string   `json:"issuer"`
	TokenURL   string   `json:"token_url"`
	ClientID   string   `json:"client_id"`
	ClientAuth string   `json:"client_auth"` // the method: basic, private_key_jwt, ...
	// ClientAuthDetail says where the method's material comes from (file
	// names, key id, certificate subject), never the material.
	ClientAuthDetail string   `json:"client_auth_detail"`
	Callers          []string `json:"callers"` // null: anyone; []: nobody
	Header           string   `json:"header"`
}

// CallersText is Callers as the page says it.
func (l Level) CallersText() string {
	switch {
	case l.Callers == nil:
		return "anyone"
	case len(l.Callers) == 0:
		return "nobody"
	}
	return strings.Join(l.Callers, ", ")
}

// CacheState is what the token cache holds for a service, and its hit
// ratio over the last minute.
type CacheState struct {
	Tokens      int        `json:"tokens"`
	Backoff     int        `json:"keys_in_backoff"`
	NextRefresh *time.Time `json:"next_refresh"`
	NextExpiry  *time.Time `json:"next_expiry"`
	Ratio
}

// Shared is the shared cache in Redis: where it is and whether it is used.
type Shared struct {
	Up        bool     `json:"up"` // false while its breaker skips Redis
	Addresses []string `json:"addresses"`
	Cluster   bool     `json:"cluster"`
	TLS       bool     `json:"tls"`
	Prefix    string   `json:"prefix"`
	Keys      int      `json:"keys"` // how many keys keys_file holds, never a key
	KeysFile  string   `json:"keys_file"`
}

// Snapshot reads everything the page shows, now.
func (p *Page) Snapshot() Snapshot {
	now := p.o.Now()
	cfg := p.o.Config()
	why := p.o.NotReady()
	s := Snapshot{
		Version:   p.o.Version,
		Generated: now,
		Config:    Config{File: cfg.Path, LastReload: *p.load.Load()},
		Ready:     why == "",
		NotReady:  why,
		Issuers:   []Issuer{},
		Unmatched: string(cfg.Unmatched),
		Services:  []Service{},
		Denials:   p.denials.list(),
	}
	issuers := p.o.Issuers(cfg)
	pending := map[string]string{}
	for _, pd := range p.o.Discovery.Pending(issuers) {
		pending[pd.Issuer] = pd.LastError
	}
	for _, iss := range issuers {
		lastErr, waiting := pending[iss]
		s.Issuers = append(s.Issuers, Issuer{Issuer: iss, Discovered: !waiting, LastError: lastErr})
	}
	caches := p.o.Cache.ServiceCaches()
	ratios, window := p.rates.ratios(now)
	for _, svc := range cfg.Routes.Services() {
		v := Service{Name: svc.Name, Hosts: list(svc.Hosts), PathPrefix: cmp.Or(svc.PathPrefix, "/"), Routes: list(svc.Routes),
			Settings: level(cfg, &svc.Settings), Endpoints: []Endpoint{}}
		for _, ep := range svc.Endpoints {
			v.Endpoints = append(v.Endpoints, Endpoint{Name: ep.Name, Path: ep.Path, Methods: list(ep.Methods), Settings: level(cfg, &ep.Settings)})
		}
		c, r := caches[svc.Name], ratios[svc.Name]
		r.Window = window
		v.Cache = CacheState{Tokens: c.Tokens, Backoff: c.Backoff, NextRefresh: timeOrNil(c.NextRefresh), NextExpiry: timeOrNil(c.NextExpiry), Ratio: r}
		s.Services = append(s.Services, v)
	}
	if sh := cfg.Cache.Shared; sh != nil && p.o.Shared != nil {
		s.Shared = &Shared{Up: p.o.Shared.Up(), Addresses: list(sh.Addresses), Cluster: len(sh.Addresses) > 1, TLS: sh.TLS != nil,
			Prefix: sh.Prefix, Keys: p.o.Shared.Keys(), KeysFile: sh.KeysFile}
	}
	return s
}

// level is the settings of one level as the page shows them.
func level(cfg *config.Config, s *scopes.Settings) Level {
	l := Level{Grant: string(s.Grant), Scope: []string{}, Header: s.Header}
	if s.Callers != nil {
		l.Callers = slices.Clone(s.Callers)
	}
	if !s.Grant.NeedsToken() {
		return l
	}
	l.Scope, l.Audience, l.ClientID = list(s.Scope), s.Audience, s.ClientID
	l.Issuer, l.TokenURL = s.TokenEndpoint.Issuer, s.TokenEndpoint.TokenURL
	l.ClientAuth, l.ClientAuthDetail = string(s.ClientAuth), "none"
	if c := cfg.Credentials(s); c != nil && c.Auth != nil {
		l.ClientAuthDetail = c.Auth.String()
	}
	return l
}

// list is s, or an empty list instead of null for scripts.
func list(s []string) []string {
	if s == nil {
		return []string{}
	}
	return slices.Clone(s)
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
