package tokens

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"strings"
	"time"
)

// jwtExpiry returns the exp claim of a JWT, read without verifying anything:
// it only bounds how long a token exchanged for it is cached. ok is false
// when tok is not a JWT or has no usable exp.
func jwtExpiry(tok string) (exp time.Time, ok bool) {
	c, _ := jwtPeek(tok)
	return c.exp, !c.exp.IsZero()
}

// peeked are the claims read from a JWT without verifying it.
type peeked struct {
	exp time.Time // zero: no usable exp
	sub string
}

// jwtPeek reads exp and sub of a JWT without verifying anything; ok is false
// when tok is not a JWT (three segments, a base64url JSON object between).
func jwtPeek(tok string) (c peeked, ok bool) {
	_, rest, found := strings.Cut(tok, ".")
	if !found {
		return c, false
	}
	payload, _, found := strings.Cut(rest, ".")
	if !found {
		return c, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(payload, "="))
	if err != nil {
		return c, false
	}
	var claims struct {
		Exp *float64 `json:"exp"`
		Sub string   `json:"sub"`
	}
	if json.Unmarshal(raw, &claims) != nil {
		var other struct { // a sub that is no string still leaves exp usable
			Exp *float64 `json:"exp"`
		}
		if json.Unmarshal(raw, &other) != nil {
			return c, false
		}
		claims.Exp = other.Exp
	}
	c.sub = claims.Sub
	if claims.Exp == nil {
		return c, true
	}
	e := *claims.Exp
	if math.IsNaN(e) || e <= 0 || e > math.MaxInt32*4 {
		return c, true
	}
	sec, frac := math.Modf(e)
	c.exp = time.Unix(int64(sec), int64(frac*1e9))
	return c, true
}
