package tokens

import (
	"context"
	"fmt"
	"time"
)

// DefaultMaxInFlight bounds the token requests under way at once when
// Options.MaxInFlight is zero.
const DefaultMaxInFlight = 64

// inFlight bounds the token requests under way. Every fetch holds one of
// the max slots of all. A fetch for a caller's subject token (an exchange
// miss) also holds one of the fewer slots of subject: every distinct
// subject token is its own cache key, so a flood of bogus bearer tokens is a
// flood of misses, and it must leave a quarter of the slots to
// client-credentials fetches and refreshes of tokens already cached.
type inFlight struct {
	max          int
	all, subject chan struct{}
}

func newInFlight(n int) *inFlight {
	reserved := 0
	if n >= 2 {
		reserved = max(1, n/4)
	}
	return &inFlight{max: n, all: make(chan struct{}, n), subject: make(chan struct{}, n-reserved)}
}

// acquire takes the slots a fetch needs, waiting until deadline at most:
// a check that cannot start its fetch in time is answered at once, instead
// of piling up behind the others. release gives the slots back.
func (l *inFlight) acquire(ctx context.Context, deadline time.Time, subjectBound bool) (release func(), err error) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if subjectBound {
		if err := take(ctx, l.subject); err != nil {
			return nil, l.busy(err)
		}
	}
	if err := take(ctx, l.all); err != nil {
		if subjectBound {
			<-l.subject
		}
		return nil, l.busy(err)
	}
	return func() {
		<-l.all
		if subjectBound {
			<-l.subject
		}
	}, nil
}

func take(ctx context.Context, slots chan struct{}) error {
	select {
	case slots <- struct{}{}:
		return nil
	default:
	}
	select {
	case slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *inFlight) busy(err error) error {
	return &Error{Class: ErrUnavailable, Description: fmt.Sprintf(
		"too many token requests in flight (token_request.max_in_flight %d); this one could not start in time: %v", l.max, err)}
}
