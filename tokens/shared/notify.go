package shared

import (
	"context"
	"sync"
)

// waiters are the local waits for lock releases, by entry name. One Redis
// subscription per process (listen) feeds them all, so waiting costs no
// connection per key.
type waiters struct {
	mu sync.Mutex
	m  map[string]map[chan struct{}]struct{}
}

// add registers a wait for name: the channel is closed at the next
// release notice; stop unregisters it.
func (w *waiters) add(name string) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	w.mu.Lock()
	if w.m == nil {
		w.m = map[string]map[chan struct{}]struct{}{}
	}
	set := w.m[name]
	if set == nil {
		set = map[chan struct{}]struct{}{}
		w.m[name] = set
	}
	set[ch] = struct{}{}
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if set, ok := w.m[name]; ok {
			delete(set, ch)
			if len(set) == 0 {
				delete(w.m, name)
			}
		}
	}
}

// wake closes and forgets every wait for name.
func (w *waiters) wake(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.m[name] {
		close(ch)
	}
	delete(w.m, name)
}

// listen subscribes to the release channel and wakes the local waits,
// until ctx ends. go-redis resubscribes by itself after a lost connection;
// meanwhile waiters fall back on polling (tokens.Source looks again every
// few hundred milliseconds).
func (c *Cache) listen(ctx context.Context) {
	ps := c.client.Subscribe(ctx, c.channel)
	defer ps.Close()
	msgs := ps.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			c.waiters.wake(m.Payload)
		}
	}
}
