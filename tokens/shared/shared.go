// Package shared is the second tier of the token cache, in Redis, shared by
// the replicas of a fleet so that the IdP sees one token request per key
// per token lifetime however many replicas serve. It implements
// tokens.Tier; tokens.Source decides everything else.
//
// Redis holds nothing readable: an entry's Redis key is the prefix and the
// base64url HMAC-SHA256 of the cache key (itself a hash of the request),
// its value AES-256-GCM with that Redis key as additional data, under the
// first key of keys_file; every key of keys_file is tried when reading, so
// entries sealed before a rotation stay readable while they live.
//
// Redis is never a reason to deny or stall: each operation is bounded by
// Options.Timeout, and after consecutive failures a breaker skips Redis for
// a few seconds (then probes it), during which the Source runs alone.
package shared

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenauthz/tokenauthz/tokens"
)

// DefaultTimeout bounds each Redis operation when Options.Timeout is zero.
const DefaultTimeout = 100 * time.Millisecond

// Operations and outcomes, the labels of
// tokenauthz_shared_cache_operations_total.
const (
	OpGet    = "get"
	OpPut    = "put"
	OpLock   = "lock"
	OpUnlock = "unlock"
	OpPing   = "ping"   // the breaker's probe while Redis is skipped
	OpDelete = "delete" // a purge

	OutcomeHit     = "hit"     // get: an entry that opened
	OutcomeMiss    = "miss"    // get: none under this key's name
	OutcomeInvalid = "invalid" // get: an entry that does not open or decode: a miss
	OutcomeOK      = "ok"      // put, unlock; lock: taken
	OutcomeBusy    = "busy"    // lock: another replica holds it
	OutcomeError   = "error"   // Redis failed or timed out
	OutcomeSkipped = "skipped" // the breaker is open: Redis not asked
)

// Observer is told about every operation and about the breaker, for
// metrics. It must be fast and safe for concurrent use.
type Observer interface {
	ObserveSharedOp(op, outcome string)
	ObserveSharedUp(up bool)
}

// Options configure a Cache.
type Options struct {
	// Addresses: one is a standalone Redis (or a proxy in front of one),
	// several are the seed nodes of a Redis Cluster.
	Addresses []string
	Username  string
	Password  string
	DB        int
	TLS       *tls.Config // nil: plain TCP
	Prefix    string      // of every Redis key and of the release channel
	// Keys are the keys of keys_file, KeySize bytes each: the first seals,
	// all open.
	Keys [][]byte
	// Timeout bounds each Redis operation. Default DefaultTimeout.
	Timeout time.Duration
	// BreakerFailures consecutive failures open the breaker for
	// BreakerOpen. Defaults DefaultBreakerFailures, DefaultBreakerOpen.
	BreakerFailures int
	BreakerOpen     time.Duration
	Observer        Observer     // nil: not observed
	Log             *slog.Logger // nil: discarded
}

// Cache is the Redis tier. Safe for concurrent use.
type Cache struct {
	client  redis.UniversalClient
	prefix  string
	channel string // release notices: the entry name of each released lock
	timeout time.Duration
	ring    atomic.Pointer[ring]
	breaker *breaker
	obs     Observer
	log     *slog.Logger
	waiters waiters
	stop    context.CancelFunc
	done    chan struct{} // closed when listen and probe have returned
}

var _ tokens.Tier = (*Cache)(nil)

// lockSuffix names an entry's lock.
const lockSuffix = ".lock"

// New connects to Redis as o says (lazily: an unreachable Redis is not an
// error, the breaker handles it) and subscribes to release notices.
func New(o Options) (*Cache, error) {
	r, err := newRing(o.Keys)
	if err != nil {
		return nil, err
	}
	if len(o.Addresses) == 0 {
		return nil, errors.New("shared cache: no Redis address")
	}
	c := &Cache{prefix: o.Prefix, channel: o.Prefix + "released", timeout: o.Timeout, obs: o.Observer, log: o.Log, done: make(chan struct{})}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	} else {
		setRedisLog.Do(func() { redis.SetLogger(redisLog{o.Log}) })
	}
	c.ring.Store(r)
	c.breaker = &breaker{failures: o.BreakerFailures, open: o.BreakerOpen, now: time.Now, onChange: c.changed}
	if c.breaker.failures <= 0 {
		c.breaker.failures = DefaultBreakerFailures
	}
	if c.breaker.open <= 0 {
		c.breaker.open = DefaultBreakerOpen
	}
	c.client = redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs: o.Addresses, Username: o.Username, Password: o.Password, DB: o.DB, TLSConfig: o.TLS,
		DialTimeout: c.timeout, ReadTimeout: c.timeout, WriteTimeout: c.timeout, PoolTimeout: c.timeout,
		MaxRetries:            -1, // a retry would outlast the timeout; the next check tries again
		ContextTimeoutEnabled: true,
		DisableIdentity:       true, // no CLIENT SETINFO: older servers and proxies refuse it
	})
	if c.obs != nil {
		c.obs.ObserveSharedUp(true)
	}
	// At startup no check waits: give a first connection (TLS, Cluster
	// slots) longer than one operation gets.
	ctx, cancel := context.WithTimeout(context.Background(), max(c.timeout, time.Second))
	err = c.client.Ping(ctx).Err()
	cancel()
	if err != nil {
		c.log.Warn("shared cache: redis not reachable; serving from the local cache meanwhile", "err", err)
		c.breaker.trip()
	}
	var lctx context.Context
	lctx, c.stop = context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { c.listen(lctx) })
	wg.Go(func() { c.probe(lctx) })
	go func() { wg.Wait(); close(c.done) }()
	return c, nil
}

// SetKeys replaces the keys (keys_file re-read on reload): entries sealed
// under a key still listed stay readable.
func (c *Cache) SetKeys(keys [][]byte) error {
	r, err := newRing(keys)
	if err != nil {
		return err
	}
	c.ring.Store(r)
	return nil
}

// Up reports whether Redis is in use (the breaker is closed).
func (c *Cache) Up() bool { return c.breaker.up() }

// Keys is how many keys of keys_file are in use (the first seals).
func (c *Cache) Keys() int { return len(c.ring.Load().keys) }

// Close stops the subscription and closes the connections.
func (c *Cache) Close() error {
	c.stop()
	<-c.done
	return c.client.Close()
}

// Get looks key up under the name each key of the ring gives it, in order.
func (c *Cache) Get(ctx context.Context, key string) (tokens.SharedEntry, bool) {
	r := c.ring.Load()
	for i := range r.keys {
		k := &r.keys[i]
		name := k.name(c.prefix, key)
		var e tokens.SharedEntry
		outcome, ok := c.call(ctx, OpGet, func(ctx context.Context) (string, error) {
			b, err := c.client.Get(ctx, name).Bytes()
			switch {
			case errors.Is(err, redis.Nil):
				return OutcomeMiss, nil
			case err != nil:
				return "", err
			}
			plain, err := k.open(name, b)
			if err == nil {
				e, err = decode(plain)
			}
			if err != nil {
				c.log.Debug("shared cache: entry does not open; treated as a miss", "name", name, "err", err)
				return OutcomeInvalid, nil
			}
			return OutcomeHit, nil
		})
		if !ok {
			return tokens.SharedEntry{}, false
		}
		if outcome == OutcomeHit {
			return e, true
		}
	}
	return tokens.SharedEntry{}, false
}

// Put seals e under the first key and stores it for ttl.
func (c *Cache) Put(ctx context.Context, key string, e tokens.SharedEntry, ttl time.Duration) {
	if ttl < time.Millisecond {
		return
	}
	k := &c.ring.Load().keys[0]
	name := k.name(c.prefix, key)
	value := k.seal(name, encode(e))
	c.call(ctx, OpPut, func(ctx context.Context) (string, error) {
		return OutcomeOK, c.client.Set(ctx, name, value, ttl).Err()
	})
}

// Delete drops key's entry under the name each key of the ring gives it,
// one DEL a name: in a Cluster the names lie in different slots.
func (c *Cache) Delete(ctx context.Context, key string) {
	r := c.ring.Load()
	for i := range r.keys {
		name := r.keys[i].name(c.prefix, key)
		c.call(ctx, OpDelete, func(ctx context.Context) (string, error) {
			return OutcomeOK, c.client.Del(ctx, name).Err()
		})
	}
}

// Lock takes key's lock (SET NX PX with a random owner id). When Redis
// cannot answer, the lock is as good as granted: the caller fetches alone.
func (c *Cache) Lock(ctx context.Context, key string, lease time.Duration) func() {
	name := c.ring.Load().keys[0].name(c.prefix, key)
	owner := rand.Text()
	outcome, ok := c.call(ctx, OpLock, func(ctx context.Context) (string, error) {
		err := c.client.Do(ctx, "SET", name+lockSuffix, owner, "PX", strconv.FormatInt(max(lease.Milliseconds(), 1), 10), "NX").Err()
		switch {
		case errors.Is(err, redis.Nil):
			return OutcomeBusy, nil
		case err != nil:
			return "", err
		}
		return OutcomeOK, nil
	})
	switch {
	case !ok:
		return func() {}
	case outcome == OutcomeBusy:
		return nil
	}
	return func() { c.release(name, owner) }
}

// releaseScript deletes the lock only if its owner is still the caller (a
// lease that ran out may have passed it on), then tells the waiters.
var releaseScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  redis.call("DEL", KEYS[1])
end
redis.call("PUBLISH", ARGV[2], ARGV[3])
return 1
`)

func (c *Cache) release(name, owner string) {
	c.call(context.Background(), OpUnlock, func(ctx context.Context) (string, error) {
		return OutcomeOK, releaseScript.Run(ctx, c.client, []string{name + lockSuffix}, owner, c.channel, name).Err()
	})
}

// Wait returns a channel closed by the next release of key's lock.
func (c *Cache) Wait(key string) (<-chan struct{}, func()) {
	return c.waiters.add(c.ring.Load().keys[0].name(c.prefix, key))
}

// probe pings Redis while the breaker is open, so that sharing resumes
// (and tokenauthz_shared_cache_up says so) when Redis is back, even if no
// check misses meanwhile.
func (c *Cache) probe(ctx context.Context) {
	t := time.NewTicker(c.breaker.open)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !c.breaker.up() {
			c.call(ctx, OpPing, func(ctx context.Context) (string, error) { return OutcomeOK, c.client.Ping(ctx).Err() })
		}
	}
}

// call runs one Redis operation under the breaker, bounded by the timeout,
// and counts it. ok is false when Redis was skipped or failed.
func (c *Cache) call(ctx context.Context, op string, f func(context.Context) (string, error)) (outcome string, ok bool) {
	if !c.breaker.allow() {
		c.observe(op, OutcomeSkipped)
		return OutcomeSkipped, false
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	outcome, err := f(ctx)
	c.breaker.done(err == nil)
	if err != nil {
		c.observe(op, OutcomeError)
		c.log.Debug("shared cache: redis operation failed", "op", op, "err", err)
		return OutcomeError, false
	}
	c.observe(op, outcome)
	return outcome, true
}

func (c *Cache) observe(op, outcome string) {
	if c.obs != nil {
		c.obs.ObserveSharedOp(op, outcome)
	}
}

// setRedisLog routes go-redis's own log lines (a process-wide setting)
// to the first logger given, at debug: plain lines on stderr would break
// the JSON log.
var setRedisLog sync.Once

type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...))
}

// changed logs and reports the breaker opening or closing.
func (c *Cache) changed(up bool) {
	if up {
		c.log.Info("shared cache: redis answers again; sharing resumes")
	} else {
		c.log.Warn(fmt.Sprintf("shared cache: redis failing; local cache only, next try in %v", c.breaker.open))
	}
	if c.obs != nil {
		c.obs.ObserveSharedUp(up)
	}
}
