package shared

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/tokenauthz/tokenauthz/tokens"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func TestSealAndOpen(t *testing.T) {
	r, err := newRing([][]byte{testKey(1), testKey(2)})
	if err != nil {
		t.Fatal(err)
	}
	k1, k2 := &r.keys[0], &r.keys[1]
	name := k1.name("p:", "cache-key")
	plain := []byte("the plaintext of an entry")
	sealed := k1.seal(name, plain)
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	otherFormat := bytes.Clone(sealed)
	otherFormat[0] = 2
	tests := []struct {
		name   string
		key    *sealKey
		rkey   string
		value  []byte
		opens  bool
		reason string
	}{
		{"same-key-same-name", k1, name, sealed, true, ""},
		{"moved-to-another-name", k1, k1.name("p:", "other-cache-key"), sealed, false, "additional data binds the Redis key"},
		{"other-prefix", k1, k1.name("q:", "cache-key"), sealed, false, "the prefix is part of the name"},
		{"key-not-in-ring", k2, name, sealed, false, "sealed under another key"},
		{"altered-byte", k1, name, flipped, false, "GCM tag"},
		{"truncated", k1, name, sealed[:len(sealed)-5], false, "GCM tag"},
		{"header-only", k1, name, sealed[:headerSize], false, "too short"},
		{"empty", k1, name, nil, false, "too short"},
		{"other-format", k1, name, otherFormat, false, "unknown format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.key.open(tt.rkey, tt.value)
			if tt.opens {
				if err != nil || !bytes.Equal(got, plain) {
					t.Fatalf("open = %q, %v; want the plaintext", got, err)
				}
				return
			}
			if !errors.Is(err, errUnreadable) {
				t.Fatalf("open = %q, %v; want errUnreadable (%s)", got, err, tt.reason)
			}
		})
	}
	if bytes.Contains(sealed, plain) {
		t.Error("the sealed value contains the plaintext")
	}
	if again := k1.seal(name, plain); bytes.Equal(again, sealed) {
		t.Error("two seals of one plaintext are equal: nonce reused")
	}
}

func TestNamesPerKey(t *testing.T) {
	a, _ := newRing([][]byte{testKey(1)})
	b, _ := newRing([][]byte{testKey(2), testKey(1)})
	if a.keys[0].name("p:", "k") != b.keys[1].name("p:", "k") {
		t.Error("one key gives different names in two rings")
	}
	if a.keys[0].name("p:", "k") == b.keys[0].name("p:", "k") {
		t.Error("two keys give one name")
	}
	if a.keys[0].name("p:", "k") == a.keys[0].name("p:", "j") {
		t.Error("two cache keys give one name")
	}
	if a.keys[0].id == b.keys[0].id {
		t.Error("two keys have one id")
	}
}

func TestNewRingRejects(t *testing.T) {
	tests := []struct {
		name string
		keys [][]byte
	}{
		{"no-keys", nil},
		{"short-key", [][]byte{make([]byte, 16)}},
		{"long-key-after-good", [][]byte{testKey(1), make([]byte, 33)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := newRing(tt.keys); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestEncodeDecode(t *testing.T) {
	now := time.Unix(1_800_000_000, 123456789)
	tok := tokens.SharedEntry{
		Token: tokens.NewToken("access-token", "Bearer", "a b", now.Add(time.Hour)),
		Until: now.Add(59 * time.Minute), RefreshAt: now.Add(58 * time.Minute),
	}
	fail := tokens.SharedEntry{
		Err:   &tokens.Error{Class: tokens.ErrSubjectRejected, Code: "invalid_grant", Description: "expired", Status: 400, RetryAfter: 2 * time.Second},
		Fails: 3, Until: now.Add(time.Second),
	}
	for _, tt := range []struct {
		name string
		e    tokens.SharedEntry
	}{{"token", tok}, {"failure", fail}, {"token-without-expiry-or-refresh", tokens.SharedEntry{Token: tokens.NewToken("x", "bearer", "", time.Time{}), Until: now}}} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decode(encode(tt.e))
			if err != nil {
				t.Fatal(err)
			}
			if !sameEntry(got, tt.e) {
				t.Fatalf("decode(encode(e)) = %+v, want %+v", got, tt.e)
			}
			if got.Err == nil && got.Token.Bearer() != "Bearer "+tt.e.Token.AccessToken {
				t.Errorf("Bearer() = %q", got.Token.Bearer())
			}
		})
	}
	b := encode(tok)
	for i := range len(b) {
		if _, err := decode(b[:i]); err == nil {
			t.Fatalf("decode of the first %d of %d bytes succeeded", i, len(b))
		}
	}
	if _, err := decode(append(bytes.Clone(b), 0)); err == nil {
		t.Error("decode with a trailing byte succeeded")
	}
	other := bytes.Clone(b)
	other[0] = entryVersion + 1
	if _, err := decode(other); err == nil {
		t.Error("decode of an unknown version succeeded")
	}
}

func sameEntry(a, b tokens.SharedEntry) bool {
	if !a.Until.Equal(b.Until) || !a.RefreshAt.Equal(b.RefreshAt) || a.Fails != b.Fails {
		return false
	}
	if (a.Err == nil) != (b.Err == nil) {
		return false
	}
	if a.Err != nil {
		x, y := *a.Err, *b.Err
		return x == y
	}
	return a.Token.AccessToken == b.Token.AccessToken && a.Token.TokenType == b.Token.TokenType &&
		a.Token.Scope == b.Token.Scope && a.Token.Expiry.Equal(b.Token.Expiry)
}

func TestBreaker(t *testing.T) {
	now := time.Unix(0, 0)
	var changes []bool
	b := &breaker{failures: 3, open: 5 * time.Second, now: func() time.Time { return now }, onChange: func(up bool) { changes = append(changes, up) }}
	step := func(name string, want bool) {
		t.Helper()
		if got := b.allow(); got != want {
			t.Fatalf("%s: allow() = %v, want %v", name, got, want)
		}
	}
	for range 2 {
		step("closed", true)
		b.done(false)
	}
	step("two failures: still closed", true)
	b.done(false)
	step("three failures: open", false)
	if b.up() {
		t.Error("up() after three failures")
	}
	now = now.Add(5 * time.Second)
	step("open period over: one probe", true)
	step("while probing: skipped", false)
	b.done(false)
	step("failed probe: open again", false)
	now = now.Add(5 * time.Second)
	step("second probe", true)
	b.done(true)
	step("probe succeeded: closed", true)
	b.done(true)
	if !b.up() {
		t.Error("not up after a good probe")
	}
	b.trip()
	step("tripped: open", false)
	if want := []bool{false, true, false}; len(changes) != len(want) || changes[0] != want[0] || changes[1] != want[1] || changes[2] != want[2] {
		t.Errorf("changes = %v, want %v", changes, want)
	}
}
