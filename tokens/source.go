package tokens

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/patrickmn/go-cache"
	"golang.org/x/sync/singleflight"
)

// Fetcher gets one token from a token endpoint; *Client is the real one.
type Fetcher interface {
	Fetch(ctx context.Context, tokenURL string, r Request) (Token, error)
}

// Observer is told about every token request, to export metrics and logs.
// It must be fast and safe for concurrent use. r carries credentials: use
// only fields with few values (service, grant type, client id, audience).
type Observer interface {
	// ObserveFetch: a request was sent to the token endpoint, with this
	// outcome, answered (or failed) after d.
	ObserveFetch(r Request, outcome string, d time.Duration)
	// ObserveNotSent: a request was needed but never sent, for reason
	// (NotSentNoEndpoint, NotSentBusy); the check got ErrUnavailable.
	ObserveNotSent(r Request, reason string)
}

// Reasons a needed token request was not sent, as given to Observer.
const (
	// NotSentNoEndpoint: the token endpoint is not known: the issuer's
	// discovery has not succeeded (yet), or the request names no endpoint.
	NotSentNoEndpoint = "no_endpoint"
	// NotSentBusy: no in-flight slot came free before the deadline
	// (Options.MaxInFlight).
	NotSentBusy = "max_in_flight"
)

// Outcomes of a fetch, as given to Observer and returned by Outcome.
const (
	OutcomeOK              = "ok"
	OutcomeSubjectRejected = "subject_rejected"
	OutcomeClientRejected  = "client_rejected"
	OutcomeUnavailable     = "unavailable"
	OutcomeCanceled        = "canceled"
)

// Outcome names the class of err, for metrics labels.
func Outcome(err error) string {
	switch {
	case err == nil:
		return OutcomeOK
	case errors.Is(err, ErrSubjectRejected):
		return OutcomeSubjectRejected
	case errors.Is(err, ErrClientRejected):
		return OutcomeClientRejected
	case errors.Is(err, context.Canceled):
		return OutcomeCanceled
	default:
		return OutcomeUnavailable
	}
}

// Options configure a Source. Zero durations and sizes take the defaults
// named on each field.
type Options struct {
	// Fetcher gets tokens; nil means a zero Client.
	Fetcher Fetcher
	// Discovery finds the token endpoint of requests without TokenURL; nil
	// makes such requests fail with ErrClientRejected.
	Discovery *Discovery
	// Observer, if set, is told about every fetch.
	Observer Observer
	// Now is the clock cache expiry is judged by; nil means time.Now.
	Now func() time.Time
	// ExpirySkew: a token is cached until its expiry minus ExpirySkew.
	// Default 30s; negative means none.
	ExpirySkew time.Duration
	// RefreshBefore: a cached token with less life left than this (but never
	// before half its cached life) is refreshed in the background while it
	// is still served. Default 60s; negative disables refresh-ahead.
	RefreshBefore time.Duration
	// MaxEntries bounds the cache, failures included. Default 100000.
	MaxEntries int
	// DefaultTTL is how long a token without expires_in is cached (no skew
	// is taken off it). Default 60s.
	DefaultTTL time.Duration
	// Timeout bounds one fetch (discovery included). Default 3s.
	Timeout time.Duration
	// MaxInFlight bounds the token requests under way at once; a miss
	// waits for a free slot until its caller's deadline (or Timeout) and
	// then fails with ErrUnavailable. A quarter of the slots is kept from
	// token-exchange misses, for client credentials and refreshes.
	// Default 64.
	MaxInFlight int
	// IDKey keys the token ids (Token.ID) that name cache entries in
	// Envoy's access logs; nil means a random key of this Source's own.
	// Replicas that share a cache share it, so that they name an entry alike.
	IDKey []byte
	// PurgeInterval bounds how often Purge drops one key. Default 10s.
	PurgeInterval time.Duration
	// Shared, if set, is a second cache tier shared with other Sources (see
	// Tier); nil means this Source's own cache only.
	Shared Tier
}

// Defaults of Options.
const (
	DefaultExpirySkew    = 30 * time.Second
	DefaultRefreshBefore = 60 * time.Second
	DefaultMaxEntries    = 100_000
	DefaultTTL           = 60 * time.Second
	DefaultTimeout       = 3 * time.Second
	DefaultPurgeInterval = 10 * time.Second
)

// failureMemory is how long a failure is remembered after its backoff
// window, so that consecutive failures keep doubling the window.
const failureMemory = time.Minute

// Source hands out tokens from a cache, fetching on a miss. Concurrent
// misses for one key share one fetch, which runs detached from the callers'
// cancellation and bounded by Options.Timeout; tokens near expiry are
// refreshed in the background; a failing key is not asked again within a
// backoff window (250ms doubling to 5s, or the endpoint's Retry-After up to
// 5s). Safe for concurrent use.
type Source struct {
	fetcher       Fetcher
	discovery     *Discovery
	observer      Observer
	now           func() time.Time
	skew          time.Duration
	refreshBefore time.Duration
	maxEntries    int
	defaultTTL    time.Duration
	timeout       time.Duration
	slots         *inFlight
	idKey         []byte
	purgeInterval time.Duration
	tier          Tier          // nil: in-process only
	lease         time.Duration // of a tier lock: a little longer than timeout

	cache   *cache.Cache // Key -> *entry
	group   singleflight.Group
	storeMu sync.Mutex // see store
	ids     *sync.Map  // Token.ID -> Key, for the entries holding a token
	purged  sync.Map   // Key -> time of its last Purge
	purges  atomic.Uint64

	hits, misses, backoffs, refreshes, fetches, evictions atomic.Uint64
}

// CacheStats are counters since the Source was made, and its current size.
type CacheStats struct {
	Hits      uint64 // tokens served from the cache
	Misses    uint64 // requests that waited for a fetch
	Backoffs  uint64 // failures served from the cache within a backoff window
	Refreshes uint64 // background refreshes started
	Fetches   uint64 // requests sent to the token endpoint
	Evictions uint64 // live entries dropped because the cache was full
	Entries   uint64 // entries now in the cache, failures included
}

// NewSource returns a Source with opts, defaults filled in.
func NewSource(opts Options) *Source {
	s := &Source{
		fetcher:       opts.Fetcher,
		discovery:     opts.Discovery,
		observer:      opts.Observer,
		now:           opts.Now,
		skew:          orDefault(opts.ExpirySkew, DefaultExpirySkew),
		refreshBefore: orDefault(opts.RefreshBefore, DefaultRefreshBefore),
		maxEntries:    opts.MaxEntries,
		defaultTTL:    orDefault(opts.DefaultTTL, DefaultTTL),
		timeout:       orDefault(opts.Timeout, DefaultTimeout),
		cache:         cache.New(cache.NoExpiration, time.Minute),
		tier:          opts.Shared,
	}
	if s.fetcher == nil {
		s.fetcher = &Client{Now: opts.Now}
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.maxEntries <= 0 {
		s.maxEntries = DefaultMaxEntries
	}
	if s.defaultTTL < 0 {
		s.defaultTTL = DefaultTTL
	}
	if s.timeout < 0 {
		s.timeout = DefaultTimeout
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = DefaultMaxInFlight
	}
	s.slots = newInFlight(opts.MaxInFlight)
	s.idKey = opts.IDKey
	if s.idKey == nil {
		s.idKey = make([]byte, 32)
		rand.Read(s.idKey)
	}
	s.purgeInterval = orDefault(opts.PurgeInterval, DefaultPurgeInterval)
	s.ids = new(sync.Map)
	s.cache.OnEvicted(forgetIn(s.ids))
	s.lease = leaseFor(s.timeout)
	return s
}

func orDefault(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return -1
	}
	return d
}

// Token returns a token for r, from the cache when it holds a live one.
// Errors are as from Client.Fetch; a caller whose ctx ends while waiting gets
// context.Canceled (wrapped) or an ErrUnavailable timeout, and the fetch goes
// on for the others.
func (s *Source) Token(ctx context.Context, r Request) (Token, error) {
	key := Key(r)
	now := s.now()
	if e := s.lookup(key); e != nil && now.Before(e.until) {
		if e.err != nil {
			s.backoffs.Add(1)
			return Token{}, e.err
		}
		s.hits.Add(1)
		tok := e.tok
		tok.Cache = CacheHit
		if e.refreshDue(now) && e.refreshing.CompareAndSwap(false, true) {
			s.refreshes.Add(1)
			tok.Cache = CacheRefresh
			go s.refresh(ctx, key, r, e)
		}
		return tok, nil
	}
	s.misses.Add(1)
	tok, err := s.wait(ctx, key, r)
	tok.Cache = CacheMiss
	return tok, err
}

// Stats returns the counters and size of the cache.
func (s *Source) Stats() CacheStats {
	return CacheStats{
		Hits:      s.hits.Load(),
		Misses:    s.misses.Load(),
		Backoffs:  s.backoffs.Load(),
		Refreshes: s.refreshes.Load(),
		Fetches:   s.fetches.Load(),
		Evictions: s.evictions.Load(),
		Entries:   uint64(s.cache.ItemCount()),
	}
}

// wait joins or starts the fetch for key and waits for it or for ctx.
func (s *Source) wait(ctx context.Context, key string, r Request) (Token, error) {
	ch := s.group.DoChan(key, func() (any, error) { return s.load(ctx, key, r, false) })
	select {
	case res := <-ch:
		if res.Err != nil {
			return Token{}, res.Err
		}
		return res.Val.(Token), nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.Canceled) {
			return Token{}, fmt.Errorf("tokens: waiting for token: %w", context.Canceled)
		}
		return Token{}, &Error{Class: ErrUnavailable, Description: "timeout waiting for token endpoint"}
	}
}

// refresh renews e in the background; its result only updates the cache.
func (s *Source) refresh(ctx context.Context, key string, r Request, e *entry) {
	defer e.refreshing.Store(false)
	_, _, _ = s.group.Do(key, func() (any, error) { return s.load(ctx, key, r, true) })
}

// load runs once per key at a time (under s.group): it fetches unless the
// cache already answers, and records the result. A miss waits for its
// in-flight slot until its caller's deadline at most; a refresh, which has
// no caller waiting, until Timeout.
func (s *Source) load(ctx context.Context, key string, r Request, refresh bool) (Token, error) {
	prev := s.lookup(key)
	now := s.now()
	if prev != nil && now.Before(prev.until) {
		if prev.err != nil {
			return Token{}, prev.err
		}
		if !prev.refreshDue(now) { // stored by a fetch that just finished
			return prev.tok, nil
		}
	}
	if s.tier != nil {
		return s.loadShared(ctx, key, r, prev, s.slotFor(ctx, r, refresh))
	}
	_, tok, err := s.fetchAndStore(ctx, key, r, prev, s.slotFor(ctx, r, refresh))
	return tok, err
}

// slot is what a fetch asks of the in-flight bound: a slot by deadline,
// among the subject-bound ones or not.
type slot struct {
	deadline     time.Time
	subjectBound bool
}

// slotFor: a miss waits for its in-flight slot until its caller's deadline
// at most; a refresh, which has no caller waiting, until Timeout. Only an
// exchange-like miss is subject-bound.
func (s *Source) slotFor(ctx context.Context, r Request, refresh bool) slot {
	sl := slot{deadline: time.Now().Add(s.timeout), subjectBound: r.sendsSubject() && !refresh}
	if d, ok := ctx.Deadline(); ok && !refresh && d.Before(sl.deadline) {
		sl.deadline = d
	}
	return sl
}

// fetchAndStore fetches r and records the outcome under key. It returns the
// entry that changed, for a second tier to share: the one stored, or prev
// with its next refresh point after a failed refresh; nil when none did.
func (s *Source) fetchAndStore(ctx context.Context, key string, r Request, prev *entry, sl slot) (*entry, Token, error) {
	now := s.now()
	release, err := s.slots.acquire(context.WithoutCancel(ctx), sl.deadline, sl.subjectBound)
	if err != nil {
		s.notSent(r, NotSentBusy)
		// The IdP was not asked: nothing to back off from. A refresh
		// serves the old token and tries again after a backoff.
		if prev != nil && prev.err == nil && now.Before(prev.until) {
			prev.refreshAt.Store(now.Add(backoff(int(prev.refreshFails.Add(1)))).UnixNano())
			return prev, prev.tok, nil
		}
		return nil, Token{}, err
	}
	defer release()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	tok, err := s.fetch(ctx, r)
	now = s.now()
	if err != nil {
		if prev != nil && prev.err == nil && now.Before(prev.until) {
			// A refresh failed: serve the old token and retry later.
			n := prev.refreshFails.Add(1)
			prev.refreshAt.Store(now.Add(failureWindow(int(n), err)).UnixNano())
			return prev, prev.tok, nil
		}
		if errors.Is(err, context.Canceled) {
			return nil, Token{}, err
		}
		fails := 1
		if prev != nil && prev.err != nil {
			fails = prev.fails + 1
		}
		window := failureWindow(fails, err)
		err = withBackoff(err, window)
		e := &entry{err: err, fails: fails, until: now.Add(window), service: r.Service}
		s.store(key, e, window+failureMemory)
		return e, Token{}, err
	}
	e := s.newEntry(tok, r, now)
	if now.Before(e.until) {
		s.store(key, e, e.until.Sub(now))
		return e, e.tok, nil
	}
	if prev != nil {
		s.cache.Delete(key)
	}
	return nil, tok, nil
}

// fetch resolves the token endpoint and asks it. Only a request actually
// sent counts as a fetch for the Observer and Stats: one that never left
// because the endpoint is unknown (discovery pending or failing) is
// observed as not sent.
func (s *Source) fetch(ctx context.Context, r Request) (Token, error) {
	tokenURL, err := s.endpoint(ctx, r)
	if err != nil {
		s.notSent(r, NotSentNoEndpoint)
		return Token{}, err
	}
	s.fetches.Add(1)
	start := time.Now()
	tok, err := s.fetcher.Fetch(ctx, tokenURL, r)
	if s.observer != nil {
		s.observer.ObserveFetch(r, Outcome(err), time.Since(start))
	}
	return tok, err
}

// endpoint is r's token URL: the configured one, else its issuer's
// discovered token endpoint (its mTLS alias for tls_client_auth).
func (s *Source) endpoint(ctx context.Context, r Request) (string, error) {
	if r.TokenURL != "" {
		return r.TokenURL, nil
	}
	if s.discovery == nil {
		return "", &Error{Class: ErrClientRejected, Description: "no token URL and no discovery"}
	}
	if _, ok := r.Auth.(*tlsClientAuth); ok {
		return s.discovery.MTLSEndpoint(ctx, r.Issuer)
	}
	return s.discovery.Endpoint(ctx, r.Issuer)
}

func (s *Source) notSent(r Request, reason string) {
	if s.observer != nil {
		s.observer.ObserveNotSent(r, reason)
	}
}
