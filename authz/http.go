package authz

import (
	"net/http"
	"strings"
	"time"
)

// The HTTP authorization endpoints. They render the same Decision as Check.
const (
	// CheckPrefix is the path_prefix of Envoy's http_service: Envoy appends
	// the original path to it.
	CheckPrefix = "/check"
	// ForwardAuthPath is the endpoint for forward-auth proxies.
	ForwardAuthPath = "/forward-auth"
	// headersToRemoveHeader lists, in an allowed answer to Envoy's
	// http_service, the request headers Envoy drops before going upstream.
	headersToRemoveHeader = "x-envoy-auth-headers-to-remove"
)

// HTTPHandler serves HTTP authorization and passes every other request to
// next (health, readiness). It has two entry points, kept apart so that a
// header the client sent can never choose the service whose token is
// injected:
//
//   - /check/<original path> is for Envoy's ext_authz filter in http_service
//     mode (path_prefix: /check). The request is the original one: its
//     method, the path after the prefix (query included), Host and headers.
//     No X-Forwarded-* header is read. Context extensions cannot be sent in
//     this mode, so services are matched by host and path only. Allowed: 200
//     with the token header, which Envoy copies upstream when it is listed in
//     authorization_response.allowed_upstream_headers.
//   - /forward-auth is for forward-auth proxies (nginx auth_request, Caddy
//     forward_auth, Traefik ForwardAuth). The original request is described
//     by X-Forwarded-Method, X-Forwarded-Uri (or X-Original-URI) and
//     X-Forwarded-Host (or X-Original-Host), which the proxy must set,
//     overwriting the client's; the method, path and Host of the request
//     itself are ignored. A missing one is a malformed request (400), and so
//     are two different values for one (X-Forwarded-Uri and X-Original-URI
//     both sent and differing, say). Allowed: 200 with the token header for
//     the proxy to copy upstream.
//
// Both take the caller's token from Authorization and the request id from
// X-Request-Id, and decide through Decide, as Check does. A denial is the
// decision's HTTP status with its JSON body.
//
// It routes before next so that /check paths reach it as sent: an
// http.ServeMux would redirect paths holding "//", "." or "..". Each wrap
// (tracing) applies to the two authorization entry points only, not to next.
func (s *Server) HTTPHandler(next http.Handler, wrap ...func(http.Handler) http.Handler) http.Handler {
	var decide http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == ForwardAuthPath {
			writeDecision(w, s.forwardAuth(r))
			return
		}
		writeDecision(w, s.Decide(r.Context(), inputFromCheckHTTP(r)))
	})
	for _, w := range wrap {
		decide = w(decide)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.RequestURI, CheckPrefix+"/") || r.URL.Path == ForwardAuthPath {
			decide.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// inputFromCheckHTTP reads a request Envoy sent to /check<original path>.
func inputFromCheckHTTP(r *http.Request) Input {
	return Input{
		RequestID:     requestID(r.Header.Get("X-Request-Id")),
		Method:        r.Method,
		Host:          r.Host,
		Path:          strings.TrimPrefix(r.RequestURI, CheckPrefix),
		Authorization: r.Header.Get("Authorization"),
		HTTPMode:      true,
	}
}

func (s *Server) forwardAuth(r *http.Request) Decision {
	in := Input{RequestID: requestID(r.Header.Get("X-Request-Id")), Authorization: r.Header.Get("Authorization"), HTTPMode: true}
	var conflicts []string
	for _, f := range []struct {
		dst   *string
		names []string
	}{
		{&in.Method, []string{"X-Forwarded-Method"}},
		{&in.Path, []string{"X-Forwarded-Uri", "X-Original-URI"}},
		{&in.Host, []string{"X-Forwarded-Host", "X-Original-Host"}},
	} {
		v, ok := forwarded(r.Header, f.names...)
		if !ok {
			conflicts = append(conflicts, strings.Join(f.names, ", "))
		}
		*f.dst = v
	}
	if len(conflicts) > 0 {
		msg := "conflicting values in " + strings.Join(conflicts, "; ")
		return s.finish(deny(ReasonMalformed, in, msg), time.Now())
	}
	return s.Decide(r.Context(), in) // missing values: malformed, by PlanFor
}

// forwarded returns the one value the headers names hold. ok is false when
// they hold different values.
func forwarded(h http.Header, names ...string) (v string, ok bool) {
	for _, name := range names {
		for _, x := range h.Values(name) {
			switch {
			case x == "" || x == v:
			case v == "":
				v = x
			default:
				return "", false
			}
		}
	}
	return v, true
}

// writeDecision renders d as an HTTP response: 200 with the token header, or
// the denial's status and JSON body. Neither may be cached.
func writeDecision(w http.ResponseWriter, d Decision) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if d.Allowed() {
		if d.Header != "" {
			h.Set(d.Header, d.Value)
		}
		if len(d.RemoveHeaders) > 0 {
			// Envoy's http_service removes the request headers listed here
			// (forward-auth proxies ignore it).
			h.Set(headersToRemoveHeader, strings.Join(d.RemoveHeaders, ","))
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	if c := d.Challenge(); c != "" {
		h.Set("WWW-Authenticate", c)
	}
	h.Set("Content-Type", "application/json")
	w.WriteHeader(d.HTTPStatus())
	w.Write(d.Body())
}
