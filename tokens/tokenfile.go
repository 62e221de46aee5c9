package tokens

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// maxTokenFile bounds what is read of a token file: projected
// service-account tokens and JWT-SVIDs are a few KiB.
const maxTokenFile = 64 << 10

// TokenFile is a token another agent writes and rotates: a projected
// Kubernetes service-account token (the kubelet rewrites it about hourly), a
// SPIFFE JWT-SVID (spiffe-helper). It is read each time it is needed, so a
// rotation is used without a restart; tokens are only sent on fetches,
// which the cache keeps rare.
type TokenFile struct {
	Key    string // the configuration key that names it, for messages
	Path   string
	seen   atomic.Pointer[fileIdentity]
	seenAt atomic.Int64 // unix nanoseconds of the last look at the file's subject
}

// identityRefresh bounds how stale Identity may be: a file rewritten for
// another subject changes the cache key within about this long, though
// checks read no file (one read a second at most, by whichever check
// comes).
const identityRefresh = time.Second

// fileIdentity is the subject of the last token read, and the Identity
// built from it once, so that Identity does not allocate per check.
type fileIdentity struct{ sub, id string }

// NewTokenFile returns the token file at path, named by key in messages. It
// reads the file once, if it is there, to learn its subject for Identity; a
// missing file is no error yet (the agent may write it later).
func NewTokenFile(key, path string) *TokenFile {
	f := &TokenFile{Key: key, Path: path}
	sub := ""
	if tok, err := f.read(); err == nil {
		c, _ := jwtPeek(tok)
		sub = c.sub
	}
	f.seen.Store(&fileIdentity{sub: sub, id: identity(path, sub)})
	f.seenAt.Store(time.Now().UnixNano())
	return f
}

// Read returns the token now in the file. A missing, empty or oversized
// file, or a JWT whose exp is past, is an error of class ErrClientRejected
// naming the file: our own credential is unusable.
func (f *TokenFile) Read(now time.Time) (string, error) {
	tok, err := f.read()
	if err != nil {
		return "", materialError("%s %s: %v", f.Key, f.Path, err)
	}
	c, isJWT := jwtPeek(tok)
	if isJWT && !c.exp.IsZero() && !now.Before(c.exp) {
		return "", materialError("%s %s: the token expired at %s (is the agent that rotates it running?)",
			f.Key, f.Path, c.exp.UTC().Format(time.RFC3339))
	}
	f.learn(c.sub)
	return tok, nil
}

// learn records the subject of the token now in the file.
func (f *TokenFile) learn(sub string) {
	f.seenAt.Store(time.Now().UnixNano())
	if f.seen.Load().sub != sub {
		f.seen.Store(&fileIdentity{sub: sub, id: identity(f.Path, sub)})
	}
}

func (f *TokenFile) read() (string, error) {
	file, err := os.Open(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", errors.New("missing")
	}
	if err != nil {
		return "", err
	}
	defer file.Close()
	data, err := io.ReadAll(io.LimitReader(file, maxTokenFile+1))
	if err != nil {
		return "", err
	}
	if len(data) > maxTokenFile {
		return "", fmt.Errorf("larger than %d bytes", maxTokenFile)
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" {
		return "", errors.New("empty")
	}
	return tok, nil
}

// Identity is the file's path and the subject of the token in it (looked at
// every identityRefresh): a rotated token of the same subject keeps the
// cached tokens, another subject gets its own.
func (f *TokenFile) Identity() string {
	now := time.Now().UnixNano()
	if last := f.seenAt.Load(); now-last > int64(identityRefresh) && f.seenAt.CompareAndSwap(last, now) {
		if tok, err := f.read(); err == nil {
			c, _ := jwtPeek(tok)
			f.learn(c.sub)
		}
	}
	return f.seen.Load().id
}

// Usable reports why the file's token cannot be used now, or nil.
func (f *TokenFile) Usable(now time.Time) error {
	_, err := f.Read(now)
	return err
}
