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
//	issuer, token URL, client id, the client authentication's Identity,
//	grant type, sorted de-duplicated scopes (count, then each), audience,
//	resource, the extra parameters (count, then name and value of each) and,
//	for a token exchange, subject token type, requested token type, the
//	subject token itself and the actor (its file's Identity and token type)
//	or, for the jwt-bearer grant, the assertion.
//
// Secrets and subject tokens only enter the hash, so the key holds none in
// clear. The credential's identity is in it so that another credential (a
// rotated secret, another key) starts afresh: no token or backed-off failure
// of the old one is served for the new. The key is 32 raw bytes, not text.
//
// Key runs on every request: for usual sizes (up to 8 scopes, a subject
// token up to about 3.5 KiB) it allocates only the returned string.
func Key(r Request) string {
	// Stack buffers, the large one only when a subject token needs it:
	// zeroing 4 KiB is a third of the cost of a small key.
	if r.sendsSubject() && len(r.SubjectToken) > 128 {
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
	if r.Auth == nil {
		b = appendField(b, noAuth{}.Identity())
	} else {
		b = appendField(b, r.Auth.Identity())
	}
	b = appendField(b, r.GrantType)
	b = appendScopes(b, r.Scope)
	b = appendField(b, r.Audience)
	b = appendField(b, r.Resource)
	b = binary.AppendUvarint(b, uint64(len(r.Params)))
	for _, p := range r.Params {
		b = appendField(b, p.Name)
		b = appendField(b, p.Value)
	}
	switch r.GrantType {
	case GrantTokenExchange:
		b = appendField(b, r.SubjectTokenType)
		b = appendField(b, r.RequestedTokenType)
		b = appendField(b, r.SubjectToken)
		if r.Actor != nil {
			b = append(b, 1)
			b = appendField(b, r.Actor.Identity())
			b = appendField(b, r.ActorTokenType)
		} else {
			b = append(b, 0)
		}
	case GrantJWTBearer:
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
