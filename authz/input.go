package authz

import (
	"cmp"
	"strings"
	"unsafe"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/tokenauthz/tokenauthz/scopes"
)

// Input is what a check needs to know about the original request, taken from
// an Envoy CheckRequest or from an HTTP authorization request.
type Input struct {
	RequestID string
	Method    string
	Host      string
	Path      string
	// Service and Endpoint name the backend explicitly: Envoy's context
	// extensions, else the route's tokenauthz metadata (SelectedBy says
	// which).
	Service    string
	Endpoint   string
	SelectedBy string
	// Route is the Gateway API route the request took, from Envoy
	// Gateway's route metadata; zero when there is none.
	Route         scopes.RouteRef
	Authorization string // the caller's Authorization header, as sent
	// Principal is the downstream peer's identity as Envoy verified it
	// (attributes.source.principal: the client certificate's URI SAN, a
	// SPIFFE ID in Istio); "" without mTLS.
	Principal string
	// HTTPMode: the request came through the HTTP entry points, which
	// cannot carry a verified principal.
	HTTPMode bool
}

// How Input.Service was chosen.
const (
	ByContextExtensions = "context_extensions"
	ByRouteMetadata     = "route_metadata"
)

// Route metadata namespaces tokenauthz reads (the ext_authz filter's
// route_metadata_context_namespaces): its own, where a route sets
// {service, endpoint}, and Envoy Gateway's.
const (
	MetadataNamespace             = "tokenauthz"
	EnvoyGatewayMetadataNamespace = "envoy-gateway"
)

// InputFromCheck reads a CheckRequest as Check does (explain builds one
// from its flags). ok is false when it carries no HTTP attributes.
func InputFromCheck(req *authv3.CheckRequest) (Input, bool) { return inputFromCheck(req) }

// inputFromCheck reads a CheckRequest through nil-safe getters. ok is false
// when the request carries no HTTP attributes to decide on.
func inputFromCheck(req *authv3.CheckRequest) (Input, bool) {
	var f checkFields
	f.fromProto(req)
	return f.input()
}

// The headers a check reads, by index into checkFields.headers.
const (
	hRequestID = iota
	hMethod
	hAuthority
	hHost
	hPath
	hAuthorization
	numHeaders
)

var headerNames = [numHeaders]string{"x-request-id", ":method", ":authority", "host", ":path", "authorization"}

// checkFields are the parts of a CheckRequest a check reads. Both readers
// fill them: fromProto from a decoded message, and the wire decoder
// (wire.go) straight from its bytes; input turns them into the Input, so
// the two cannot drift apart in anything but reading.
type checkFields struct {
	http                   bool // attributes.request.http is present
	id, method, host, path string
	principal              string
	service, endpoint      string // context extensions
	headers                [numHeaders]header
	// From route_metadata_context.filter_metadata: the tokenauthz
	// namespace's service and endpoint, and the route Envoy Gateway names.
	routeService, routeEndpoint string
	route                       scopes.RouteRef
}

// header is one header as both encodings Envoy may send give it: the
// `headers` map, or `header_map` when the filter runs with
// encode_raw_headers.
type header struct {
	inMap, inRaw bool
	mapValue     string // headers[name], names lower case on the wire
	rawValue     string // the first header_map entry whose key is name in any case: value, else raw_value
}

func (h header) value() string {
	if h.inMap {
		return h.mapValue
	}
	return h.rawValue
}

func (f *checkFields) fromProto(req *authv3.CheckRequest) {
	attrs := req.GetAttributes()
	h := attrs.GetRequest().GetHttp()
	f.http = h != nil
	f.id, f.method, f.host, f.path = h.GetId(), h.GetMethod(), h.GetHost(), h.GetPath()
	f.principal = attrs.GetSource().GetPrincipal()
	ext := attrs.GetContextExtensions()
	f.service, f.endpoint = ext["service"], ext["endpoint"]
	for i, name := range headerNames {
		if v, ok := h.GetHeaders()[name]; ok {
			f.headers[i].inMap, f.headers[i].mapValue = true, v
		}
	}
	for _, hv := range h.GetHeaderMap().GetHeaders() {
		f.rawHeader(hv.GetKey(), hv.GetValue(), string(hv.GetRawValue()))
	}
	// The route metadata of the namespaces listed in the filter's
	// route_metadata_context_namespaces: a route's
	// metadata.filter_metadata.tokenauthz: {service, endpoint}, and the
	// route identity Envoy Gateway sends with includeRouteMetadata,
	// filter_metadata["envoy-gateway"].resources, a list whose first
	// struct has kind, namespace, name and, for a named rule, sectionName
	// (Envoy Gateway's internal/xds/translator/metadata.go,
	// buildXdsMetadata and buildResourceMetadata; internal/gatewayapi/
	// route.go passes the rule's name as the section).
	meta := attrs.GetRouteMetadataContext().GetFilterMetadata()
	md := meta[MetadataNamespace].GetFields()
	f.routeService, f.routeEndpoint = md["service"].GetStringValue(), md["endpoint"].GetStringValue()
	if res := meta[EnvoyGatewayMetadataNamespace].GetFields()["resources"].GetListValue().GetValues(); len(res) > 0 {
		r := res[0].GetStructValue().GetFields()
		f.route = scopes.RouteRef{
			Kind:      r[routeKind].GetStringValue(),
			Namespace: r[routeNamespace].GetStringValue(),
			Name:      r[routeName].GetStringValue(),
			Section:   r[routeSection].GetStringValue(),
		}
	}
}

// The keys of a resource in Envoy Gateway's route metadata.
const (
	routeKind      = "kind"
	routeNamespace = "namespace"
	routeName      = "name"
	routeSection   = "sectionName"
)

// rawHeader takes one header_map entry, in order: the first entry of each
// name counts.
func (f *checkFields) rawHeader(key, value, raw string) {
	for i, name := range headerNames {
		if !f.headers[i].inRaw && strings.EqualFold(key, name) {
			f.headers[i].inRaw, f.headers[i].rawValue = true, cmp.Or(value, raw)
		}
	}
}

// numStrings is how many strings checkFields has (see stringFields).
const numStrings = 13 + 2*numHeaders

// stringFields points at every string of f: own copies them all.
func (f *checkFields) stringFields() [numStrings]*string {
	var ps [numStrings]*string
	fixed := []*string{&f.id, &f.method, &f.host, &f.path, &f.principal, &f.service, &f.endpoint,
		&f.routeService, &f.routeEndpoint, &f.route.Kind, &f.route.Namespace, &f.route.Name, &f.route.Section}
	n := copy(ps[:], fixed)
	for i := range f.headers {
		ps[n], ps[n+1] = &f.headers[i].mapValue, &f.headers[i].rawValue
		n += 2
	}
	return ps
}

// own copies the strings of f into one allocation of their own: the wire
// decoder's point into the request's buffer, which gRPC reuses.
func (f *checkFields) own() {
	ps := f.stringFields()
	n := 0
	for _, p := range ps {
		n += len(*p)
	}
	buf := make([]byte, 0, n)
	for _, p := range ps {
		if *p != "" {
			start := len(buf)
			buf = append(buf, *p...)
			*p = unsafe.String(&buf[start], len(*p))
		}
	}
}

func (f *checkFields) input() (Input, bool) {
	if !f.http {
		return Input{}, false
	}
	hv := func(i int) string { return f.headers[i].value() }
	in := Input{
		// x-request-id first: it is what Envoy's access logs and the
		// upstream see. http.id is always set too, to Envoy's internal
		// stream number (source/extensions/filters/common/ext_authz/
		// check_request_utils.cc, setHttpRequest: set_id(std::to_string(
		// streamId()))), which matches nothing a user can look up.
		RequestID:     requestID(first(hv(hRequestID), f.id)),
		Method:        first(f.method, hv(hMethod)),
		Host:          first(f.host, hv(hAuthority), hv(hHost)),
		Path:          first(f.path, hv(hPath)),
		Authorization: hv(hAuthorization),
		Principal:     f.principal,
	}
	f.selectBackend(&in)
	return in, true
}

// selectBackend takes the explicit service and endpoint: the context
// extensions, else the route's tokenauthz metadata; the source that names
// the service names the endpoint too. And it takes the route Envoy Gateway
// names.
func (f *checkFields) selectBackend(in *Input) {
	in.Service, in.Endpoint = f.service, f.endpoint
	if in.Service != "" || in.Endpoint != "" {
		in.SelectedBy = ByContextExtensions
	}
	if in.Service == "" && f.routeService != "" {
		in.Service, in.Endpoint, in.SelectedBy = f.routeService, f.routeEndpoint, ByRouteMetadata
	}
	in.Route = f.route
}

// maxRequestIDLen bounds the request id echoed in denial bodies and logs:
// it comes from the client, and a 3 MB x-request-id must not become a 3 MB
// body and log line.
const maxRequestIDLen = 128

// requestID is the request id as echoed: at most maxRequestIDLen bytes of
// valid UTF-8.
func requestID(id string) string {
	if len(id) > maxRequestIDLen {
		id = id[:maxRequestIDLen]
	}
	return strings.ToValidUTF8(id, "")
}

func first(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// bearer returns the token of an RFC 6750 "Bearer <b64token>" Authorization
// value, or "" for anything else: another scheme, no token, or a value that
// is not one b64token ("Bearer Bearer x", "Bearer a b", two values joined).
func bearer(authorization string) string {
	scheme, token, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return ""
	}
	token = strings.TrimLeft(token, " ")
	if !isB64Token(token) {
		return ""
	}
	return token
}

// isB64Token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		if !b64TokenChar[body[i]] {
			return false
		}
	}
	return true
}

// b64TokenChar is a lookup table: a caller token is scanned on every check.
var b64TokenChar = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/") {
		t[c] = true
	}
	return t
}()
