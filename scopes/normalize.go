package scopes

// Normalisation of the paths and hosts that requests and the configuration
// carry, so that matching compares like with like.

import (
	"path"
	"strings"
)

// cleanPath drops the query and fragment, normalises percent-encoding and
// resolves dot segments (RFC 3986 6.2.2), so "/v1/orders/../admin" and
// "/v1/orders/%2e%2e/admin" cannot borrow the orders endpoint's settings.
// Escapes of reserved bytes stay encoded: "%2F" is not a segment boundary.
func cleanPath(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	p = normEscapes(p)
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	return path.Clean(p)
}

// cleanPrefix normalises a configured prefix: "", "/" and "/v1/" become "" , "" and "/v1".
func cleanPrefix(p string) string {
	p = cleanPath(p)
	if p == "/" {
		return ""
	}
	return p
}

// joinPath appends an endpoint path to a cleaned service prefix. The endpoint
// path is resolved on its own first, so "/../admin" cannot climb out of the
// prefix: an endpoint's path is always under its service's prefix.
func joinPath(prefix, p string) string {
	return cleanPrefix(prefix + cleanPath(p))
}

// normEscapes normalises percent-encoding (RFC 3986 6.2.2.1-2): escapes of
// unreserved characters (ALPHA, DIGIT, "-", ".", "_", "~") are decoded, other
// escapes get uppercase hex digits ("%2f" is "%2F") and stay encoded, and a
// "%" that starts no escape becomes "%25". Decoding stray "%"s as is would let
// "%7%30" become "%70", a new escape: this way the result is stable,
// normEscapes(normEscapes(p)) == normEscapes(p). It allocates only when it
// changes p.
func normEscapes(p string) string {
	i := strings.IndexByte(p, '%')
	if i < 0 {
		return p
	}
	var b []byte // nil while p is unchanged
	for ; i < len(p); i++ {
		if p[i] != '%' {
			if b != nil {
				b = append(b, p[i])
			}
			continue
		}
		var c byte
		ok := false
		if i+2 < len(p) {
			c, ok = unhex(p[i+1], p[i+2])
		}
		var buf [3]byte
		var out []byte
		in := p[i : i+1]
		switch {
		case ok && unreserved(c):
			buf[0] = c
			out, in = buf[:1], p[i:i+3]
		case ok:
			buf = [3]byte{'%', upperHex[c>>4], upperHex[c&15]}
			out, in = buf[:], p[i:i+3]
		default:
			buf = [3]byte{'%', '2', '5'}
			out = buf[:]
		}
		if b == nil && string(out) != in {
			b = append(make([]byte, 0, len(p)+8), p[:i]...)
		}
		if b != nil {
			b = append(b, out...)
		}
		i += len(in) - 1
	}
	if b == nil {
		return p
	}
	return string(b)
}

const upperHex = "0123456789ABCDEF"

func unhex(h, l byte) (byte, bool) {
	hi, ok1 := hexVal(h)
	lo, ok2 := hexVal(l)
	return hi<<4 | lo, ok1 && ok2
}

func hexVal(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// normHost is the normal form of a configured host (see appendHost).
func normHost(h string) string {
	b, _ := appendHost(nil, h)
	return string(b)
}

// appendHost appends the normal form of a host or authority to dst: ASCII
// letters lowercased, a bare IPv6 literal bracketed ("::1" becomes
// "[::1]"), and a trailing dot of the name dropped ("orders." is "orders",
// the same DNS name). Only ASCII is folded: Unicode case folding maps
// U+212A KELVIN SIGN to "k", so "\u212Aube.internal" would borrow the
// token of kube.internal while nginx and Envoy, which compare bytes, send
// that request to another virtual host. ok is false when h holds a byte RFC
// 3986 allows in no host (ValidHostChars); such a host matches no service.
func appendHost(dst []byte, h string) (_ []byte, ok bool) {
	if !ValidHostChars(h) {
		return dst, false
	}
	bare6 := len(h) > 0 && h[0] != '[' && strings.Count(h, ":") > 1
	if bare6 {
		dst = append(dst, '[')
	}
	nameEnd, _ := hostPortIndex(h)
	for i := 0; i < len(h); i++ {
		c := h[i]
		if i == nameEnd-1 && c == '.' && !bare6 && h[0] != '[' && nameEnd > 1 {
			continue
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	if bare6 {
		dst = append(dst, ']')
	}
	return dst, true
}

// ValidHostChars reports whether every byte of h may appear in an RFC 3986
// host with an optional port: a reg-name (unreserved, pct-encoded,
// sub-delims), an IP literal ("[", "]", ":" and hex digits) and ":" port.
func ValidHostChars(h string) bool {
	for i := 0; i < len(h); i++ {
		if !hostChar[h[i]] {
			return false
		}
	}
	return true
}

var hostChar = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%!$&'()*+,;=:[]") {
		t[c] = true
	}
	return t
}()

// splitHostPort splits "host:port", "[v6]:port", "host" and "[v6]".
func splitHostPort(h string) (host, port string) {
	nameEnd, portStart := hostPortIndex(h)
	if portStart < 0 {
		return h[:nameEnd], ""
	}
	return h[:nameEnd], h[portStart:]
}

// hostPortIndex finds where the name ends and the port starts (-1: no port)
// in "host:port", "[v6]:port", "host", "[v6]" or a bare IPv6 literal.
func hostPortIndex[S ~string | ~[]byte](h S) (nameEnd, portStart int) {
	if len(h) > 0 && h[0] == '[' {
		for i := 1; i < len(h); i++ {
			if h[i] == ']' {
				if i+1 < len(h) && h[i+1] == ':' {
					return i + 1, i + 2
				}
				return i + 1, -1
			}
		}
		return len(h), -1
	}
	colon := -1
	for i := 0; i < len(h); i++ {
		if h[i] == ':' {
			if colon >= 0 {
				return len(h), -1 // several colons: a bare IPv6 literal
			}
			colon = i
		}
	}
	if colon < 0 {
		return len(h), -1
	}
	return colon, colon + 1
}
