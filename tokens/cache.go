package tokens

import (
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"
)

// entry is a cached token or a cached failure.
type entry struct {
	tok     Token
	err     error     // set: a failed fetch, answered without asking until `until`
	fails   int       // consecutive failures, this one included (failures only)
	until   time.Time // served until, by the Source clock
	service string    // Request.Service of the fetch that stored it (ServiceCaches)

	refreshAt    atomic.Int64 // unix nanoseconds; 0: never refresh
	refreshFails atomic.Int32 // consecutive failed refreshes
	refreshing   atomic.Bool  // a background refresh is running
	memo         Memo         // what callers derive from tok, once per entry
}

func (e *entry) refreshDue(now time.Time) bool {
	at := e.refreshAt.Load()
	return at != 0 && now.UnixNano() >= at
}

// newEntry caches tok for r until its expiry minus the skew (DefaultTTL
// without expiry); the skew takes at most half the token's lifetime, so a
// token shorter-lived than the skew is still cached for a while. And, for an
// exchange or a jwt-bearer grant, no later than the caller's token's exp. Refresh-ahead is planned unless the subject token bounds the entry:
// a new token would be bound the same way.
func (s *Source) newEntry(tok Token, r Request, now time.Time) *entry {
	until := now.Add(s.defaultTTL)
	if !tok.Expiry.IsZero() {
		until = tok.Expiry.Add(-max(min(s.skew, tok.Expiry.Sub(now)/2), 0))
	}
	refresh := s.refreshBefore > 0
	if r.sendsSubject() {
		if exp, ok := jwtExpiry(r.SubjectToken); ok && exp.Before(until) {
			until, refresh = exp, false
		}
	}
	e := &entry{tok: tok, until: until, service: r.Service}
	if refresh && now.Before(until) {
		// Due refresh_before ahead of the end, but not before half the
		// lifetime; then up to a quarter of the remaining span earlier, at
		// random, so keys fetched together (a start, a burst of new users)
		// do not all refresh in one burst at the IdP.
		at := until.Add(-s.refreshBefore)
		if half := now.Add(until.Sub(now) / 2); at.Before(half) {
			at = half
		}
		at = at.Add(-rand.N(until.Sub(at)/4 + 1))
		e.refreshAt.Store(at.UnixNano())
	}
	return e
}

func (s *Source) lookup(key string) *entry {
	v, ok := s.cache.Get(key)
	if !ok {
		return nil
	}
	return v.(*entry)
}

// store puts e under key, making room first when the cache is full. ttl is
// only for the cache's own janitor; expiry is judged by e.until.
//
// Counting, making room and adding are one step under storeMu: stores of
// many cold keys at once would otherwise each see room for one more and
// overshoot MaxEntries together. Only fetches store; hits never take it.
func (s *Source) store(key string, e *entry, ttl time.Duration) {
	if e.err == nil { // named for access logs and Purge, and given its memo
		e.tok.ID, e.tok.memo = s.tokenID(key), &e.memo
	}
	s.storeMu.Lock()
	if s.cache.ItemCount() >= s.maxEntries {
		if _, found := s.cache.Get(key); !found {
			s.makeRoom()
		}
	}
	s.cache.Set(key, e, ttl)
	s.storeMu.Unlock()
	if e.err == nil {
		s.ids.Store(e.tok.ID, key)
	}
}

// makeRoom drops expired entries and, if the cache is still full, the
// sixteenth of MaxEntries that expires soonest. storeMu is held.
func (s *Source) makeRoom() {
	s.cache.DeleteExpired()
	type live struct {
		key   string
		until time.Time
	}
	now := s.now()
	items := s.cache.Items()
	all := make([]live, 0, len(items))
	for k, it := range items {
		e := it.Object.(*entry)
		if !now.Before(e.until) {
			s.cache.Delete(k)
			continue
		}
		all = append(all, live{k, e.until})
	}
	if len(all) < s.maxEntries {
		return
	}
	slices.SortFunc(all, func(a, b live) int { return a.until.Compare(b.until) })
	n := max(1, s.maxEntries/16)
	for _, l := range all[:n] {
		s.cache.Delete(l.key)
	}
	s.evictions.Add(uint64(n))
}
