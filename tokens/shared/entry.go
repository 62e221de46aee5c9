package shared

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/tokenauthz/tokenauthz/tokens"
)

// entryVersion is the first byte of an entry's plaintext. A replica that
// reads a version it does not know treats the entry as a miss, so a rolling
// upgrade that changes the layout costs one fetch per key, never a wrong
// answer.
const entryVersion = 1

// Entry kinds.
const (
	kindToken   = 1
	kindFailure = 2
)

// Failure classes, as stored.
const (
	classSubjectRejected = 1
	classClientRejected  = 2
	classUnavailable     = 3
)

var errBadEntry = errors.New("malformed entry")

// encode writes e as a small binary record (what a local entry needs to
// resume exactly): version, kind, until and refresh point (unix
// nanoseconds, wall clock), then for a token its expiry, access token, type
// and scope, or for a failure the count, class, OAuth2 code, description,
// HTTP status and Retry-After. Strings and counts are uvarint-prefixed.
func encode(e tokens.SharedEntry) []byte {
	b := make([]byte, 0, 64+len(e.Token.AccessToken))
	b = append(b, entryVersion)
	if e.Err != nil {
		b = append(b, kindFailure)
	} else {
		b = append(b, kindToken)
	}
	b = binary.AppendVarint(b, unixNano(e.Until))
	b = binary.AppendVarint(b, unixNano(e.RefreshAt))
	if e.Err == nil {
		b = binary.AppendVarint(b, unixNano(e.Token.Expiry))
		b = appendString(b, e.Token.AccessToken)
		b = appendString(b, e.Token.TokenType)
		return appendString(b, e.Token.Scope)
	}
	b = binary.AppendUvarint(b, uint64(max(e.Fails, 0)))
	b = append(b, classOf(e.Err.Class))
	b = appendString(b, e.Err.Code)
	b = appendString(b, e.Err.Description)
	b = binary.AppendUvarint(b, uint64(max(e.Err.Status, 0)))
	return binary.AppendVarint(b, int64(e.Err.RetryAfter))
}

// decode reads what encode wrote; anything else is errBadEntry.
func decode(b []byte) (tokens.SharedEntry, error) {
	d := decoder{b: b}
	var e tokens.SharedEntry
	version, kind := d.byte(), d.byte()
	if version != entryVersion {
		return e, errBadEntry
	}
	e.Until, e.RefreshAt = d.time(), d.time()
	switch kind {
	case kindToken:
		expiry := d.time()
		access, typ, scope := d.string(), d.string(), d.string()
		if access == "" {
			d.bad = true
		}
		e.Token = tokens.NewToken(access, typ, scope, expiry)
	case kindFailure:
		e.Fails = int(d.uvarint())
		class := classFrom(d.byte())
		code, desc := d.string(), d.string()
		status := int(d.uvarint())
		retry := time.Duration(d.varint())
		if class == nil || e.Fails < 1 {
			d.bad = true
		}
		e.Err = &tokens.Error{Class: class, Code: code, Description: desc, Status: status, RetryAfter: retry}
	default:
		d.bad = true
	}
	if d.bad || len(d.b) != 0 || e.Until.IsZero() {
		return tokens.SharedEntry{}, errBadEntry
	}
	return e, nil
}

func classOf(class error) byte {
	switch {
	case errors.Is(class, tokens.ErrSubjectRejected):
		return classSubjectRejected
	case errors.Is(class, tokens.ErrClientRejected):
		return classClientRejected
	default:
		return classUnavailable
	}
}

func classFrom(c byte) error {
	switch c {
	case classSubjectRejected:
		return tokens.ErrSubjectRejected
	case classClientRejected:
		return tokens.ErrClientRejected
	case classUnavailable:
		return tokens.ErrUnavailable
	}
	return nil
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads fields in order; a short or malformed field sets bad and
// yields zero values from then on.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) byte() byte {
	if d.bad || len(d.b) == 0 {
		d.bad = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if d.bad || n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if d.bad || n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) time() time.Time {
	if n := d.varint(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.bad || n > uint64(len(d.b)) {
		d.bad = true
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
