package shared

import (
	"sync"
	"time"
)

// Defaults of the breaker.
const (
	DefaultBreakerFailures = 3
	DefaultBreakerOpen     = 5 * time.Second
)

// breaker skips Redis after consecutive failed operations: open for a
// while, then one operation at a time probes it; the first that succeeds
// closes it. So a Redis that is down, slow or refusing costs each check at
// most a few timeouts, then nothing, until it is back.
type breaker struct {
	failures int           // consecutive failures that open it
	open     time.Duration // how long it stays open before a probe
	now      func() time.Time
	onChange func(up bool) // told when it opens (false) and closes (true)

	mu        sync.Mutex
	fails     int // consecutive failures so far
	openUntil time.Time
	probing   bool // a probe is in flight
}

// allow reports whether an operation may go to Redis now.
func (b *breaker) allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fails < b.failures {
		return true
	}
	if b.probing || b.now().Before(b.openUntil) {
		return false
	}
	b.probing = true
	return true
}

// done records how an allowed operation went.
func (b *breaker) done(ok bool) {
	b.mu.Lock()
	wasOpen := b.fails >= b.failures
	b.probing = false
	if ok {
		b.fails = 0
	} else {
		b.fails++
		if b.fails >= b.failures {
			b.openUntil = b.now().Add(b.open)
		}
	}
	isOpen := b.fails >= b.failures
	b.mu.Unlock()
	if wasOpen != isOpen && b.onChange != nil {
		b.onChange(!isOpen)
	}
}

// trip opens the breaker at once (Redis did not answer at startup).
func (b *breaker) trip() {
	b.mu.Lock()
	wasOpen := b.fails >= b.failures
	b.fails, b.openUntil = b.failures, b.now().Add(b.open)
	b.mu.Unlock()
	if !wasOpen && b.onChange != nil {
		b.onChange(false)
	}
}

// up reports whether the breaker is closed.
func (b *breaker) up() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.fails < b.failures
}
