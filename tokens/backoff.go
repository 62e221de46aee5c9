package tokens

import (
	"errors"
	"math/rand/v2"
	"time"
)

// Retry and failure backoff: 250ms doubling per consecutive failure, capped
// at 5s, with "equal jitter" (a random point in the upper half of the window)
// so that many keys failing together do not retry in lockstep.
const (
	backoffBase = 250 * time.Millisecond
	backoffCap  = 5 * time.Second
)

// backoff returns the wait after the n-th consecutive failure (n >= 1).
func backoff(n int) time.Duration {
	d := backoffCap
	if n >= 1 && n <= 5 {
		d = min(backoffBase<<(n-1), backoffCap)
	}
	half := d / 2
	return half + rand.N(half+1)
}

// failureWindow is how long a key is not asked again after its n-th
// consecutive failure, err: the backoff, or what the endpoint asked for with
// Retry-After if that is longer (plus up to a tenth, so that keys told the
// same do not return together), but never more than backoffCap, so that one
// answer cannot keep a service denied for long.
func failureWindow(n int, err error) time.Duration {
	d := backoff(n)
	if e, ok := errors.AsType[*Error](err); ok && e.RetryAfter > d {
		d = min(e.RetryAfter+rand.N(e.RetryAfter/10+1), backoffCap)
	}
	return d
}

// withBackoff returns err stating window as the backoff in effect. A copy
// is made: the same *Error may be shared by concurrent loads (a discovery
// failure answers every key of its issuer).
func withBackoff(err error, window time.Duration) error {
	e, ok := err.(*Error)
	if !ok {
		return err
	}
	c := *e
	c.Backoff = window
	return &c
}
