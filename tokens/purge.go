package tokens

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"sync"
	"time"
)

// tokenIDLen is how many bytes of the keyed hash a token id keeps: 96 bits,
// 16 characters, enough that ids of live entries never collide.
const tokenIDLen = 12

// tokenID names the entry of key: HMAC-SHA256 under the Source's id key,
// shortened. It reveals nothing of the key's fields, and nothing of the
// token, which is not part of the key.
func (s *Source) tokenID(key string) string {
	m := hmac.New(sha256.New, s.idKey)
	m.Write([]byte(key))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:tokenIDLen])
}

// Purge drops the cached token named id (Token.ID), so that the next
// request for it fetches a new one: the backend refused it (revoked, signed
// with a rotated key, meant for another audience). A key is purged at most
// once per PurgeInterval, so a backend that answers 401 to every request
// cannot turn each request into a token request. It reports whether it
// dropped an entry; an unknown id, or one purged too recently, is ignored.
func (s *Source) Purge(id string) bool {
	v, ok := s.ids.Load(id)
	if !ok {
		return false
	}
	key := v.(string)
	now := s.now()
	if last, ok := s.purged.Load(key); ok && now.Sub(last.(time.Time)) < s.purgeInterval {
		return false
	}
	s.purged.Store(key, now)
	if s.purges.Add(1)%256 == 0 {
		s.purged.Range(func(k, last any) bool {
			if now.Sub(last.(time.Time)) >= s.purgeInterval {
				s.purged.Delete(k)
			}
			return true
		})
	}
	s.cache.Delete(key)
	if s.tier != nil { // or the next miss would adopt the same token from it
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		defer cancel()
		s.tier.Delete(ctx, key)
	}
	return true
}

// forgetIn is go-cache's OnEvicted (Delete, expiry): it drops the id of
// the entry removed. It holds ids only: a callback holding the Source
// would keep the cache reachable from its own janitor goroutine, which
// then never stops. A store racing the removal may lose its id; the key's
// next store names it again.
func forgetIn(ids *sync.Map) func(key string, v any) {
	return func(_ string, v any) {
		if e := v.(*entry); e.err == nil {
			ids.Delete(e.tok.ID)
		}
	}
}
