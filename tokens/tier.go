package tokens

import (
	"context"
	"time"
)

// Tier is a second cache tier shared by several Sources, typically the
// replicas of a fleet (tokens/shared keeps it in Redis). A Source asks it
// only when its own cache cannot answer: after a first-tier miss, inside
// the key's single flight, and when a cached token is due for refresh. A
// first-tier hit never touches it.
//
// A Tier is never a reason to fail or stall: each method bounds its own
// time, and an unavailable tier behaves as an empty one whose locks are
// always granted, so the Source runs as it does alone.
type Tier interface {
	// Get returns the entry stored for key, when one is there and readable.
	Get(ctx context.Context, key string) (SharedEntry, bool)
	// Put stores e for key, to be dropped after ttl.
	Put(ctx context.Context, key string, e SharedEntry, ttl time.Duration)
	// Delete drops key's entry (a purge: its token was refused).
	Delete(ctx context.Context, key string)
	// Lock takes the fleet-wide lock of key for lease and returns the
	// func that releases it and tells the waiters, or nil when another
	// holder has it.
	Lock(ctx context.Context, key string, lease time.Duration) (release func())
	// Wait returns a channel that is closed when a holder of key's lock
	// releases it, and a func to stop waiting. Call it before Lock, so that
	// a release between the two is not missed.
	Wait(key string) (released <-chan struct{}, stop func())
}

// SharedEntry is what a Tier keeps for a key: a token, or a failure that
// is answered without asking until Until, with the wall-clock times a local
// entry needs to resume exactly as the writer's stands.
type SharedEntry struct {
	Token     Token     // empty for a failure
	Err       *Error    // the failure; nil for a token
	Fails     int       // consecutive failures, this one included
	Until     time.Time // served until
	RefreshAt time.Time // refreshed ahead from then on; zero: never
}

// NewToken returns a token as the token endpoint issued it, its Bearer
// value built once (as Client builds it), for a Tier that reads tokens back.
func NewToken(accessToken, tokenType, scope string, expiry time.Time) Token {
	bearer := "Bearer " + accessToken
	return Token{AccessToken: bearer[len("Bearer "):], TokenType: tokenType, Scope: scope, Expiry: expiry, bearer: bearer}
}
