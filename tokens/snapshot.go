package tokens

import "time"

// ServiceCache is what the cache holds for one service at one moment.
type ServiceCache struct {
	Tokens  int // live tokens
	Backoff int // keys whose latest fetch failed, answered with that failure until its window ends
	// NextRefresh is the earliest background refresh planned among its
	// tokens; zero when none is (refresh_before off, or tokens bound by
	// the caller's token).
	NextRefresh time.Time
	// NextExpiry is the earliest end among its tokens; zero without tokens.
	NextExpiry time.Time
}

// ServiceCaches sums the live entries of the cache by the service that
// stored them. It walks a copy of the whole cache: for the status page,
// which renders on demand, never for checks. Two services with the same
// settings share their entries (the service is not part of the key); such
// an entry counts for the service whose fetch stored it.
func (s *Source) ServiceCaches() map[string]ServiceCache {
	now := s.now()
	out := map[string]ServiceCache{}
	for _, it := range s.cache.Items() {
		e := it.Object.(*entry)
		if !now.Before(e.until) {
			continue // past its end: the next check for it is a miss
		}
		c := out[e.service]
		if e.err != nil {
			c.Backoff++
		} else {
			c.Tokens++
			c.NextExpiry = earliest(c.NextExpiry, e.until)
			if at := e.refreshAt.Load(); at != 0 {
				c.NextRefresh = earliest(c.NextRefresh, time.Unix(0, at))
			}
		}
		out[e.service] = c
	}
	return out
}

// earliest is the earlier of a and b, a zero time counting as none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}
