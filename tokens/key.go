package tokens

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"
)

// Key returns the cache key of r: the SHA-256 of an unambiguous encoding of
// every field that makes the issued token differ. Each field is written with
// its length in front, so no two requests share an encoding:
//
//	issuer, token URL, client id, client secret, client authentication,
//	grant type, sorted de-duplicated scopes (count, then each), audience,
//	resource and, for a token exchange, subject token type, requested token
//	type and the subject token itself.
//
// Secrets and subject tokens only enter the hash, so the key holds none in
// clear. The secret is in it so that a rotated secret (reloaded config or
// secret file) starts afresh: no token or backed-off failure of the old one
// is served for the new. The key is 32 raw bytes, not text.
//
// Key runs on every request: for usual sizes (up to 8 scopes, a subject
// token up to about 3.5 KiB) it allocates only the returned string.
func Key(r Request) string {
	// Stack buffers, the large one only when a subject token needs it:
	// zeroing 4 KiB is a third of the cost of a small key.
	if r.GrantType == GrantTokenExchange && len(r.SubjectToken) > 128 {
		var arr [4096]byte
		return key(arr[:0], r)
	}
	var arr [512]byte
	return key(arr[:0], r)
}

func key(b []byte, r Request) string {
	b = appendField(b, r.Issuer)
	b = appendField(b, r.TokenURL)
	b = appendField(b, r.ClientID)
	b = appendField(b, r.ClientSecret)
	b = appendField(b, r.ClientAuth)
	b = appendField(b, r.GrantType)
	b = appendScopes(b, r.Scope)
	b = appendField(b, r.Audience)
	b = appendField(b, r.Resource)
	if r.GrantType == GrantTokenExchange {
		b = appendField(b, r.SubjectTokenType)
		b = appendField(b, r.RequestedTokenType)
		b = appendField(b, r.SubjectToken)
	}
	sum := sha256.Sum256(b)
	return string(sum[:])
}

func appendField(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendScopes writes the scopes as a set: sorted, duplicates once.
func appendScopes(b []byte, scope []string) []byte {
	var arr [8]string
	ss := arr[:0]
	if len(scope) > len(arr) {
		ss = make([]string, 0, len(scope))
	}
	ss = append(ss, scope...)
	slices.Sort(ss)
	ss = slices.Compact(ss)
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendField(b, s)
	}
	return b
}
