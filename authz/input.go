package authz

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
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
func inputFromCheck(req *authv3.CheckRequest) (in Input, ok bool) {
	attrs := req.GetAttributes()
	h := attrs.GetRequest().GetHttp()
	if h == nil {
		return Input{}, false
	}
	headers := checkHeaders{h.GetHeaders(), h.GetHeaderMap().GetHeaders()}
	in = Input{
		// x-request-id first: it is what Envoy's access logs and the
		// upstream see. http.id is always set too, to Envoy's internal
		// stream number (source/extensions/filters/common/ext_authz/
		// check_request_utils.cc, setHttpRequest: set_id(std::to_string(
		// streamId()))), which matches nothing a user can look up.
		RequestID:     requestID(first(headers.get("x-request-id"), h.GetId())),
		Method:        first(h.GetMethod(), headers.get(":method")),
		Host:          first(h.GetHost(), headers.get(":authority"), headers.get("host")),
		Path:          first(h.GetPath(), headers.get(":path")),
		Authorization: headers.get("authorization"),
		Principal:     attrs.GetSource().GetPrincipal(),
	}
	in.selectBackend(attrs)
	return in, true
}

// selectBackend takes the explicit service and endpoint: the context
// extensions, else the route's tokenauthz metadata (Envoy's
// route_metadata_context_namespaces: [tokenauthz], a route's
// metadata.filter_metadata.tokenauthz: {service, endpoint}); the source
// that names the service names the endpoint too. And it takes the route
// identity Envoy Gateway sends with includeRouteMetadata:
// filter_metadata["envoy-gateway"].resources, a list whose first struct
// has kind, namespace, name and, for a named rule, sectionName (Envoy
// Gateway's internal/xds/translator/metadata.go, buildXdsMetadata and
// buildResourceMetadata; internal/gatewayapi/route.go passes the rule's
// name as the section).
func (in *Input) selectBackend(attrs *authv3.AttributeContext) {
	ext := attrs.GetContextExtensions()
	in.Service, in.Endpoint = ext["service"], ext["endpoint"]
	if in.Service != "" || in.Endpoint != "" {
		in.SelectedBy = ByContextExtensions
	}
	meta := attrs.GetRouteMetadataContext().GetFilterMetadata()
	if in.Service == "" {
		md := meta[MetadataNamespace].GetFields()
		if svc := md["service"].GetStringValue(); svc != "" {
			in.Service, in.Endpoint, in.SelectedBy = svc, md["endpoint"].GetStringValue(), ByRouteMetadata
		}
	}
	if res := meta[EnvoyGatewayMetadataNamespace].GetFields()["resources"].GetListValue().GetValues(); len(res) > 0 {
		f := res[0].GetStructValue().GetFields()
		in.Route = scopes.RouteRef{
			Kind:      f["kind"].GetStringValue(),
			Namespace: f["namespace"].GetStringValue(),
			Name:      f["name"].GetStringValue(),
			Section:   f["sectionName"].GetStringValue(),
		}
	}
}

// checkHeaders reads both header encodings Envoy may send: the `headers` map,
// or `header_map` when the filter runs with encode_raw_headers.
type checkHeaders struct {
	m   map[string]string
	raw []*corev3.HeaderValue
}

// get returns the first value of a header; names are lower case on the wire.
func (h checkHeaders) get(name string) string {
	if v, ok := h.m[name]; ok {
		return v
	}
	for _, hv := range h.raw {
		if strings.EqualFold(hv.GetKey(), name) {
			if v := hv.GetValue(); v != "" {
				return v
			}
			return string(hv.GetRawValue())
		}
	}
	return ""
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
