package tokens

import (
	"context"
	"errors"
	"time"
)

// waitPoll is how long a replica waiting for another's fetch sleeps
// between looks at the tier when no release notice wakes it sooner.
const waitPoll = 250 * time.Millisecond

// leaseFor is the lease of a tier lock: a little longer than a fetch may
// take, so that a holder that died frees the key soon after.
func leaseFor(timeout time.Duration) time.Duration {
	return timeout + max(timeout/4, 250*time.Millisecond)
}

// loadShared is load with a second tier, for a key the local cache cannot
// answer (prev is nil, expired, or a live token due for refresh). It takes
// the tier's entry when that is fresher; otherwise the replica that gets
// the key's lock fetches and shares the result, and the others wait for it
// (prev, if live, is served meanwhile) until the lease of a holder that
// died has run out, then try the lock again. So a fleet makes one token
// request per key, and one refresh. The wait is bounded: past it, this
// replica fetches alone.
func (s *Source) loadShared(ctx context.Context, key string, r Request, prev *entry, sl slot) (Token, error) {
	ctx = context.WithoutCancel(ctx) // the load goes on for every caller; the tier bounds each call
	deadline := time.Now().Add(s.timeout + 2*s.lease)
	for time.Now().Before(deadline) {
		released, stop := s.tier.Wait(key)
		if e, ok := s.tier.Get(ctx, key); ok && s.fresher(e, prev) {
			stop()
			return s.adopt(key, r.Service, e)
		}
		release := s.tier.Lock(ctx, key, s.lease)
		if release == nil {
			sleepUntil(released, waitPoll)
			stop()
			continue
		}
		stop()
		defer release()
		// Read again: the holder before us may have stored it just now.
		e, ok := s.tier.Get(ctx, key)
		if ok && s.fresher(e, prev) {
			return s.adopt(key, r.Service, e)
		}
		return s.fetchShared(ctx, key, r, s.resume(prev, e, ok), sl)
	}
	return s.fetchShared(ctx, key, r, prev, sl)
}

func sleepUntil(ch <-chan struct{}, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	}
}

// fresher reports whether the tier's e should replace prev: for a miss, any
// live entry; for a token due for refresh, a later token, or the same one
// with a later refresh point (another replica's refresh failed and retries
// later).
func (s *Source) fresher(e SharedEntry, prev *entry) bool {
	now := s.now()
	if !now.Before(e.Until) {
		return false
	}
	if prev == nil || prev.err != nil || !now.Before(prev.until) {
		return true
	}
	return e.Err == nil && (e.Until.After(prev.until) || e.RefreshAt.UnixNano() > prev.refreshAt.Load())
}

// resume is the entry a fetch goes on from: prev, or the failure the tier
// holds when it is more recent, so that consecutive failures across the
// fleet keep doubling the backoff window.
func (s *Source) resume(prev *entry, e SharedEntry, found bool) *entry {
	if !found || e.Err == nil {
		return prev
	}
	if prev != nil && (prev.err == nil && s.now().Before(prev.until) || prev.err != nil && prev.fails >= e.Fails) {
		return prev
	}
	return &entry{err: e.Err, fails: e.Fails, until: e.Until}
}

// fetchShared fetches, stores locally and shares what changed.
func (s *Source) fetchShared(ctx context.Context, key string, r Request, prev *entry, sl slot) (Token, error) {
	e, tok, err := s.fetchAndStore(ctx, key, r, prev, sl)
	if e != nil {
		if se, ttl, ok := s.toShared(e); ok {
			s.tier.Put(ctx, key, se, ttl)
		}
	}
	return tok, err
}

// adopt stores the tier's entry locally with its own end and refresh
// point, and answers with it.
func (s *Source) adopt(key, service string, e SharedEntry) (Token, error) {
	ent := &entry{tok: e.Token, fails: e.Fails, until: e.Until, service: service}
	ttl := e.Until.Sub(s.now())
	if e.Err != nil {
		ent.err = e.Err
		ttl += failureMemory
	}
	if !e.RefreshAt.IsZero() {
		ent.refreshAt.Store(e.RefreshAt.UnixNano())
	}
	s.store(key, ent, ttl)
	if ent.err != nil {
		return Token{}, ent.err
	}
	return ent.tok, nil
}

// toShared is e as the tier keeps it, and how long the tier should keep it:
// a token for its life, a failure as long as the local cache remembers it.
// Failures that are not an *Error (none are, from Client) are not shared.
func (s *Source) toShared(e *entry) (SharedEntry, time.Duration, bool) {
	se := SharedEntry{Token: e.tok, Fails: e.fails, Until: e.until}
	if at := e.refreshAt.Load(); at != 0 {
		se.RefreshAt = time.Unix(0, at)
	}
	ttl := e.until.Sub(s.now())
	if e.err != nil {
		te, ok := errors.AsType[*Error](e.err)
		if !ok {
			return se, 0, false
		}
		se.Err = te
		ttl += failureMemory
	}
	return se, ttl, ttl > 0
}
