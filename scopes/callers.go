package scopes

import "strings"

// CallerAllowed reports whether principal may obtain a token under callers:
// nil allows anyone; otherwise an entry must equal principal, or end in
// "/*" and be followed in principal by at least one more byte
// ("spiffe://cluster.local/ns/shop/*" holds every service account of shop).
// An empty principal (no peer certificate, or a channel that cannot carry
// one) is never allowed by a list.
func CallerAllowed(callers []string, principal string) bool {
	if callers == nil {
		return true
	}
	if principal == "" {
		return false
	}
	for _, c := range callers {
		if prefix, ok := strings.CutSuffix(c, "*"); ok && strings.HasSuffix(prefix, "/") {
			if len(principal) > len(prefix) && strings.HasPrefix(principal, prefix) {
				return true
			}
		} else if c == principal {
			return true
		}
	}
	return false
}
