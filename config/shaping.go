package config

import (
	"errors"
	"regexp"
	"slices"
	"strings"

	"github.com/tokenauthz/tokenauthz/scopes"
)

// routeKinds are the Gateway API route kinds whose requests Envoy Gateway's
// ext_authz sees, and so may carry route metadata.
var routeKinds = []string{"HTTPRoute", "GRPCRoute"}

// dnsName is a Kubernetes object name (RFC 1123 subdomain) and
// sectionName a Gateway API SectionName (RFC 1123 label).
var (
	dnsName     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	sectionName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
)

// checkRouteID checks a route identity as Envoy Gateway names it:
// Kind/namespace/name, or Kind/namespace/name/section for one rule.
func checkRouteID(id string) error {
	parts := strings.Split(id, "/")
	if len(parts) != 3 && len(parts) != 4 {
		return errors.New("is not KIND/NAMESPACE/NAME or KIND/NAMESPACE/NAME/RULE")
	}
	if !slices.Contains(routeKinds, parts[0]) {
		return errors.New("names a kind other than " + strings.Join(routeKinds, " or "))
	}
	if !dnsName.MatchString(parts[1]) || !dnsName.MatchString(parts[2]) || len(parts[1]) > 63 || len(parts[2]) > 253 {
		return errors.New("has a namespace or name that is not a Kubernetes object name")
	}
	if len(parts) == 4 && (!sectionName.MatchString(parts[3]) || len(parts[3]) > 253) {
		return errors.New("has a rule name that is not a Gateway API section name")
	}
	return nil
}

// checkHeaderFormat checks the injected value's template: one {token}, and
// otherwise bytes a header value may hold (RFC 9110 field-vchar and space).
func checkHeaderFormat(f string) error {
	if strings.Count(f, scopes.TokenPlaceholder) != 1 {
		return errors.New("must hold " + scopes.TokenPlaceholder + " exactly once")
	}
	for i := 0; i < len(f); i++ {
		if f[i] < 0x20 || f[i] > 0x7e {
			return errors.New("holds a byte a header value cannot carry")
		}
	}
	if strings.TrimSpace(f) != f {
		return errors.New("starts or ends with white space, which is not part of a header value")
	}
	return nil
}

// checkCaller checks a callers entry: a principal as Envoy reports it (a
// certificate's URI SAN such as a SPIFFE ID, or its subject), or a prefix
// ending in "/*".
func checkCaller(c string) error {
	if c == "" || strings.ContainsFunc(c, func(r rune) bool { return r <= 0x20 || r == 0x7f }) {
		return errors.New("is empty or holds white space or control characters")
	}
	if i := strings.IndexByte(c, '*'); i >= 0 && (i != len(c)-1 || !strings.HasSuffix(c, "/*")) {
		return errors.New(`may hold "*" only as a final "/*" (a prefix); leave callers out to allow anyone`)
	}
	return nil
}

// shaping checks what a level's settings do to the upstream request.
func (b *builder) shaping(key string, s scopes.Settings) {
	if s.Grant.NeedsToken() && slices.Contains(s.HeadersToRemove(), s.Header) {
		b.fail(key+".remove_headers", ErrInvalidValue, "removes %s, the header the token is injected in (Envoy removes after it sets)", s.Header)
	}
}
