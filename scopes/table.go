package scopes

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Matching errors; callers branch on them with errors.Is.
var (
	ErrUnknownService  = errors.New("unknown service")
	ErrUnknownEndpoint = errors.New("unknown endpoint")
	ErrNoMatch         = errors.New("no service matches")
)

// ServiceSpec describes one backend service as configured.
type ServiceSpec struct {
	Name       string
	Hosts      []string // "host" matches any port, "host:port" only that port
	Routes     []string // route identities claimed: "Kind/namespace/name" or ".../section"
	PathPrefix string
	Layer      Layer
	Endpoints  []EndpointSpec
}

// EndpointSpec describes one endpoint of a service as configured.
type EndpointSpec struct {
	Name    string
	Path    string // relative to the service's path prefix
	Methods []string
	Layer   Layer
}

// Service is a backend service with its settings resolved.
type Service struct {
	Name       string
	Hosts      []string
	Routes     []string
	PathPrefix string
	Settings   Settings
	Endpoints  []*Endpoint // longest path first
}

// Endpoint is one endpoint of a service with its settings resolved.
type Endpoint struct {
	Name     string
	Path     string // full path: service prefix + endpoint path
	Methods  []string
	Settings Settings
}

// Request is what matching needs to know about an inbound request.
type Request struct {
	Service  string // explicit service name (Envoy context extension), optional
	Endpoint string // explicit endpoint name, optional
	// Route is the Gateway API route the request took (Envoy Gateway's
	// route metadata), optional.
	Route  RouteRef
	Host   string // host or authority, port optional
	Path   string // may carry a query string
	Method string
}

// Match is the outcome of matching: the service, the endpoint (nil when the
// service's own settings apply) and the settings in effect.
type Match struct {
	Service  *Service
	Endpoint *Endpoint
}

// Settings returns the settings in effect for the match.
func (m Match) Settings() *Settings {
	if m.Endpoint != nil {
		return &m.Endpoint.Settings
	}
	return &m.Service.Settings
}

// EndpointName is the matched endpoint's name, or "" at service level.
func (m Match) EndpointName() string {
	if m.Endpoint == nil {
		return ""
	}
	return m.Endpoint.Name
}

// Table matches requests to services and endpoints. Build it once with
// NewTable; it is read-only afterwards and safe for concurrent use.
type Table struct {
	Root     Settings
	byName   map[string]*Service
	byHost   map[string][]*Service // "host:port" entries
	anyPort  map[string][]*Service // "host" entries, any port
	claims   map[string]*Service   // route identity -> the service claiming it
	services []*Service
}

// NewTable resolves inheritance (root -> service -> endpoint) and indexes the
// services for matching. It returns every conflict it finds, joined.
func NewTable(root Layer, specs []ServiceSpec) (*Table, error) {
	t := &Table{
		Root:    Root(root),
		byName:  map[string]*Service{},
		byHost:  map[string][]*Service{},
		anyPort: map[string][]*Service{},
		claims:  map[string]*Service{},
	}
	var errs []error
	claimed := map[string]string{} // host + "\x00" + prefix -> service name
	for _, spec := range specs {
		svc := &Service{
			Name:       spec.Name,
			Hosts:      spec.Hosts,
			Routes:     spec.Routes,
			PathPrefix: cleanPrefix(spec.PathPrefix),
			Settings:   t.Root.Inherit(spec.Layer),
		}
		for _, es := range spec.Endpoints {
			svc.Endpoints = append(svc.Endpoints, &Endpoint{
				Name:     es.Name,
				Path:     joinPath(svc.PathPrefix, es.Path),
				Methods:  upper(es.Methods),
				Settings: svc.Settings.Inherit(es.Layer),
			})
		}
		// Longest path first; on equal paths an endpoint limited to some
		// methods goes before a catch-all one, or it could never match.
		slices.SortStableFunc(svc.Endpoints, func(a, b *Endpoint) int {
			return cmp.Or(len(b.Path)-len(a.Path), hasMethods(b)-hasMethods(a))
		})
		t.byName[svc.Name] = svc
		t.services = append(t.services, svc)
		for _, r := range spec.Routes {
			if other, dup := t.claims[r]; dup {
				errs = append(errs, fmt.Errorf("services.%s.routes: %q is already claimed by service %q", svc.Name, r, other.Name))
				continue
			}
			t.claims[r] = svc
		}
		for _, h := range spec.Hosts {
			h = normHost(h)
			key := h + "\x00" + svc.PathPrefix
			if other, dup := claimed[key]; dup {
				errs = append(errs, fmt.Errorf("services.%s.hosts: %q with path_prefix %q is already claimed by service %q", svc.Name, h, svc.PathPrefix, other))
				continue
			}
			claimed[key] = svc.Name
			if _, port := splitHostPort(h); port != "" {
				t.byHost[h] = append(t.byHost[h], svc)
			} else {
				t.anyPort[h] = append(t.anyPort[h], svc)
			}
		}
	}
	return t, errors.Join(errs...)
}

// Services lists the services in configuration order.
func (t *Table) Services() []*Service { return t.services }

// Service is the service named name, or nil.
func (t *Table) Service(name string) *Service { return t.byName[name] }

// Match selects the service and endpoint for r: by explicit name when given,
// else by the route identity a service claims (the rule's, then the
// route's), else by host and the longest path prefix; then the endpoint with
// the longest path whose methods allow r.Method.
func (t *Table) Match(r Request) (Match, error) {
	p := cleanPath(r.Path)
	var svc *Service
	if r.Service != "" {
		svc = t.byName[r.Service]
		if svc == nil {
			return Match{}, fmt.Errorf("%w %q", ErrUnknownService, Clip(r.Service))
		}
	} else if svc = t.claimed(r.Route); svc == nil {
		svc = t.byRoute(r.Host, p)
		if svc == nil {
			return Match{}, fmt.Errorf("%w host %q path %q", ErrNoMatch, Clip(r.Host), Clip(p))
		}
	}
	if r.Endpoint != "" {
		for _, ep := range svc.Endpoints {
			if ep.Name == r.Endpoint {
				return Match{Service: svc, Endpoint: ep}, nil
			}
		}
		return Match{}, fmt.Errorf("%w %q in service %q", ErrUnknownEndpoint, Clip(r.Endpoint), svc.Name)
	}
	for _, ep := range svc.Endpoints {
		if underPrefix(p, ep.Path) && allows(ep.Methods, r.Method) {
			return Match{Service: svc, Endpoint: ep}, nil
		}
	}
	return Match{Service: svc}, nil
}

// RouteRef names a Gateway API route, and one of its rules when Section is
// set, as Envoy Gateway identifies them.
type RouteRef struct{ Kind, Namespace, Name, Section string }

// String is the identity services claim: "Kind/namespace/name", with
// "/section" when set.
func (r RouteRef) String() string { return string(r.append(nil, true)) }

func (r RouteRef) append(b []byte, withSection bool) []byte {
	b = append(append(append(append(append(b, r.Kind...), '/'), r.Namespace...), '/'), r.Name...)
	if withSection && r.Section != "" {
		b = append(append(b, '/'), r.Section...)
	}
	return b
}

// claimed is the service claiming r's rule, else r's route; nil when none
// does. The keys are built on the stack: map lookups by string(bytes) do
// not allocate.
func (t *Table) claimed(r RouteRef) *Service {
	if r.Kind == "" || len(t.claims) == 0 {
		return nil
	}
	var buf [256]byte
	if r.Section != "" {
		if svc := t.claims[string(r.append(buf[:0], true))]; svc != nil {
			return svc
		}
	}
	return t.claims[string(r.append(buf[:0], false))]
}

// byRoute picks, among services claiming the host (exact port first, then any
// port), the one with the longest path prefix containing p.
func (t *Table) byRoute(host, p string) *Service {
	// Normalise into a stack buffer: map lookups keyed by string(bytes) do
	// not allocate, so mixed-case hosts cost no garbage.
	var buf [128]byte
	h, ok := appendHost(buf[:0], host)
	if !ok {
		return nil
	}
	nameEnd, _ := hostPortIndex(h)
	var best *Service
	for _, list := range [2][]*Service{t.byHost[string(h)], t.anyPort[string(h[:nameEnd])]} {
		for _, svc := range list {
			if underPrefix(p, svc.PathPrefix) && (best == nil || len(svc.PathPrefix) > len(best.PathPrefix)) {
				best = svc
			}
		}
	}
	return best
}

// underPrefix reports whether p equals prefix or continues it at a segment
// boundary ("/v1" holds "/v1" and "/v1/x", not "/v10").
func underPrefix(p, prefix string) bool {
	if prefix == "" {
		return true
	}
	if !strings.HasPrefix(p, prefix) {
		return false
	}
	return len(p) == len(prefix) || p[len(prefix)] == '/'
}

func allows(methods []string, m string) bool {
	return len(methods) == 0 || slices.ContainsFunc(methods, func(x string) bool { return strings.EqualFold(x, m) })
}

func hasMethods(e *Endpoint) int {
	if len(e.Methods) > 0 {
		return 1
	}
	return 0
}

func upper(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.ToUpper(s)
	}
	return out
}

// Clip bounds request text quoted in an error: errors become denial bodies
// and log lines, which a 1 MiB path must not become.
func Clip(s string) string {
	const max = 128
	if len(s) <= max {
		return s
	}
	return strings.ToValidUTF8(s[:max], "") + "..."
}
