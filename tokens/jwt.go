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
	_, rest, found := strings.Cut(tok, ".")
	if !found {
		return time.Time{}, false
	}
	payload, _, found := strings.Cut(rest, ".")
	if !found {
		return time.Time{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(payload, "="))
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp *float64 `json:"exp"`
	}
	if json.Unmarshal(raw, &claims) != nil || claims.Exp == nil {
		return time.Time{}, false
	}
	e := *claims.Exp
	if math.IsNaN(e) || e <= 0 || e > math.MaxInt32*4 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(e)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}
