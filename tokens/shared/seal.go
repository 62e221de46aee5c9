package shared

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
)

// KeySize is the size of each key in keys_file: 32 bytes, for AES-256.
const KeySize = 32

// sealFormat is the first byte of every value; a value of another format
// is not read.
const sealFormat = 1

// A sealed value is sealFormat, the key id, the GCM nonce, then the
// ciphertext with its tag.
const (
	idSize     = 4
	nonceSize  = 12
	headerSize = 1 + idSize + nonceSize
)

var errUnreadable = errors.New("unreadable entry")

// ring holds the keys of keys_file: the first seals, every one opens.
type ring struct{ keys []sealKey }

// sealKey is one key of keys_file as it is used. The key itself is never
// used directly: HKDF (RFC 5869) derives one subkey that names Redis keys
// (HMAC-SHA256), one that seals values (AES-256-GCM) and the id written in
// front of each value, so that no subkey tells anything about another.
type sealKey struct {
	id    [idSize]byte
	names []byte
	aead  cipher.AEAD
}

func newRing(keys [][]byte) (*ring, error) {
	if len(keys) == 0 {
		return nil, errors.New("shared cache: no keys")
	}
	r := &ring{keys: make([]sealKey, len(keys))}
	for i, k := range keys {
		if len(k) != KeySize {
			return nil, fmt.Errorf("shared cache: key %d is %d bytes, want %d", i+1, len(k), KeySize)
		}
		sk := &r.keys[i]
		var err error
		if sk.names, err = hkdf.Key(sha256.New, k, nil, "tokenauthz shared cache: names", 32); err != nil {
			return nil, err
		}
		id, err := hkdf.Key(sha256.New, k, nil, "tokenauthz shared cache: key id", idSize)
		if err != nil {
			return nil, err
		}
		copy(sk.id[:], id)
		seal, err := hkdf.Key(sha256.New, k, nil, "tokenauthz shared cache: seal", 32)
		if err != nil {
			return nil, err
		}
		block, err := aes.NewCipher(seal)
		if err != nil {
			return nil, err
		}
		if sk.aead, err = cipher.NewGCM(block); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// name is the Redis key of the cache key under k: prefix and the
// base64url HMAC-SHA256 of the cache key, which itself is a hash of the
// request. Nothing about the request can be read from it.
func (k *sealKey) name(prefix, cacheKey string) string {
	m := hmac.New(sha256.New, k.names)
	m.Write([]byte(cacheKey))
	return prefix + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// seal encrypts plain for the Redis key name, which is bound as additional
// data: a value copied to another key does not open.
func (k *sealKey) seal(name string, plain []byte) []byte {
	out := make([]byte, headerSize, headerSize+len(plain)+k.aead.Overhead())
	out[0] = sealFormat
	copy(out[1:], k.id[:])
	rand.Read(out[1+idSize : headerSize])
	return k.aead.Seal(out, out[1+idSize:headerSize], plain, []byte(name))
}

// open decrypts a value read from the Redis key name under k. A value of
// another format, sealed under another key or for another name, truncated
// or altered is errUnreadable.
func (k *sealKey) open(name string, value []byte) ([]byte, error) {
	if len(value) < headerSize+k.aead.Overhead() || value[0] != sealFormat || [idSize]byte(value[1:1+idSize]) != k.id {
		return nil, errUnreadable
	}
	plain, err := k.aead.Open(nil, value[1+idSize:headerSize], value[headerSize:], []byte(name))
	if err != nil {
		return nil, errUnreadable
	}
	return plain, nil
}
