package tokens

import (
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
