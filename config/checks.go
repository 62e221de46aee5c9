package config

// Checks that catch a configuration which loads but would misroute or leak
// silently: unknown methods, credentials over plain http, and the warnings
// (no services, trailing host dots).

import (
	"fmt"
	"net"
	"strings"
)

// ExtensionPrefix marks a method outside the IANA HTTP Method Registry as
// meant: "ext:PURGE" matches requests with method PURGE. Without it an
// unregistered name ("PSOT") is taken for a typo and refused: an endpoint
// whose methods match nothing silently hands its requests the service's
// settings instead.
const ExtensionPrefix = "ext:"

// registeredMethods is the IANA HTTP Method Registry
// (https://www.iana.org/assignments/http-methods), "*" aside: RFC 9110's
// methods, WebDAV's and its extensions', PATCH (RFC 5789), PRI (RFC 9113).
var registeredMethods = map[string]bool{}

func init() {
	for _, m := range strings.Fields(`ACL BASELINE-CONTROL BIND CHECKIN CHECKOUT CONNECT COPY DELETE GET HEAD
		LABEL LINK LOCK MERGE MKACTIVITY MKCALENDAR MKCOL MKREDIRECTREF MKWORKSPACE MOVE OPTIONS
		ORDERPATCH PATCH POST PRI PROPFIND PROPPATCH PUT REBIND REPORT SEARCH TRACE UNBIND
		UNCHECKOUT UNLINK UNLOCK UPDATE UPDATEREDIRECTREF VERSION-CONTROL`) {
		registeredMethods[m] = true
	}
}

// method checks one configured method and returns it as matching uses it:
// a registered method in any case, or an RFC 9110 token after
// ExtensionPrefix.
func (b *builder) method(key, m string) string {
	if name, ok := strings.CutPrefix(m, ExtensionPrefix); ok {
		if !isToken(name) {
			b.fail(key, ErrInvalidValue, "%q: %q is not an HTTP method token (RFC 9110)", m, name)
		}
		return name
	}
	switch {
	case !isToken(m):
		b.fail(key, ErrInvalidValue, "%q is not an HTTP method", m)
	case !registeredMethods[strings.ToUpper(m)]:
		b.fail(key, ErrInvalidValue, "%q is not a method of the IANA HTTP Method Registry (a typo?); write an extension method as %q", m, ExtensionPrefix+m)
	}
	return m
}

// loopback reports whether host (no port, no brackets) is this machine:
// localhost, or a loopback IP literal (127.0.0.0/8, ::1).
func loopback(host string) bool {
	host = strings.TrimSuffix(host, ".")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// inClear says what an http URL at key would send unprotected.
func inClear(key string) string {
	if strings.HasSuffix(key, ".token_url") {
		return "the client secret and subject tokens"
	}
	return "the discovery document that names the token endpoint (and then the client secret)"
}

func (b *builder) warn(key, format string, args ...any) {
	b.warnings = append(b.warnings, key+": "+fmt.Sprintf(format, args...))
}

func (b *builder) warnNoServices(u Unmatched) {
	what := "denied 403"
	if u == UnmatchedAllow {
		what = "passed through untouched"
	}
	b.warn("services", "no services configured: every request is unmatched and %s (unmatched: %s)", what, u)
}

// warnTrailingDot: "orders." is matched as "orders", on both sides, which
// the file should say rather than leave to be discovered.
func (b *builder) warnTrailingDot(key, h string) {
	name := h
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasPrefix(h, "[") && strings.Count(h, ":") == 1 {
		name = h[:i]
	}
	if len(name) > 1 && strings.HasSuffix(name, ".") {
		b.warn(key, "%q is matched as %q: a trailing dot is dropped from configured and request hosts alike; write it without the dot",
			h, strings.TrimSuffix(name, ".")+h[len(name):])
	}
}
