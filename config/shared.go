package config

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SharedCache configures the second cache tier in Redis (cache.shared),
// shared by the replicas of a fleet. Everything here is checked statically;
// Redis itself is only contacted by `serve`.
type SharedCache struct {
	// Addresses: one is a standalone Redis (or a proxy in front of one),
	// several are Redis Cluster seed nodes.
	Addresses    []string
	Username     string
	Password     string // from password (${VAR} expanded) or password_file
	PasswordFile string
	TLS          *SharedTLS // nil: plain TCP
	DB           int
	Prefix       string
	KeysFile     string
	// Keys are the keys of KeysFile, 32 bytes each: the first seals new
	// entries, every one opens. Re-read on reload, for rotation.
	Keys    [][]byte
	Timeout time.Duration // each Redis operation
}

// SharedTLS is cache.shared.tls: TLS to Redis, always verified.
type SharedTLS struct {
	CAFile, CertFile, KeyFile string
	RootCAs                   *x509.CertPool    // nil: the system's
	Certificates              []tls.Certificate // the client certificate, when cert_file is set
}

// Defaults of cache.shared.
const (
	DefaultSharedPrefix  = "tokenauthz:"
	DefaultSharedTimeout = 100 * time.Millisecond
)

type rawShared struct {
	Addresses    []string      `yaml:"addresses"`
	Username     *string       `yaml:"username"`
	Password     *string       `yaml:"password"`
	PasswordFile *string       `yaml:"password_file"`
	TLS          *rawSharedTLS `yaml:"tls"`
	DB           *int          `yaml:"db"`
	Prefix       *string       `yaml:"prefix"`
	KeysFile     *string       `yaml:"keys_file"`
	Timeout      *duration     `yaml:"timeout"`
}

type rawSharedTLS struct {
	CAFile   *string `yaml:"ca_file"`
	CertFile *string `yaml:"cert_file"`
	KeyFile  *string `yaml:"key_file"`
}

// Equal reports whether c and o are the same settings, keys aside: keys
// are what a reload may change (rotation), the rest needs a restart.
func (c Cache) Equal(o Cache) bool {
	if c.ExpirySkew != o.ExpirySkew || c.RefreshBefore != o.RefreshBefore || c.MaxEntries != o.MaxEntries ||
		c.Prewarm != o.Prewarm || c.PurgeInterval != o.PurgeInterval {
		return false
	}
	if c.Shared == nil || o.Shared == nil {
		return c.Shared == o.Shared
	}
	a, b := *c.Shared, *o.Shared
	if (a.TLS == nil) != (b.TLS == nil) || a.TLS != nil && (a.TLS.CAFile != b.TLS.CAFile || a.TLS.CertFile != b.TLS.CertFile || a.TLS.KeyFile != b.TLS.KeyFile) {
		return false
	}
	return slices.Equal(a.Addresses, b.Addresses) && a.Username == b.Username && a.Password == b.Password &&
		a.DB == b.DB && a.Prefix == b.Prefix && a.KeysFile == b.KeysFile && a.Timeout == b.Timeout
}

func (b *builder) shared(raw *rawShared) *SharedCache {
	const key = "cache.shared"
	s := &SharedCache{Prefix: DefaultSharedPrefix, Timeout: DefaultSharedTimeout}
	if len(raw.Addresses) == 0 {
		b.fail(key+".addresses", ErrInvalidValue, "at least one Redis address (host:port) is needed")
	}
	for i, a := range raw.Addresses {
		if !validAddress(a) {
			b.fail(fmt.Sprintf("%s.addresses[%d]", key, i), ErrInvalidValue, "%q is not host:port", a)
		}
	}
	s.Addresses = raw.Addresses
	if raw.Username != nil {
		s.Username = *raw.Username
	}
	switch {
	case raw.Password != nil && raw.PasswordFile != nil:
		b.fail(key+".password", ErrInvalidValue, "set password or password_file, not both")
	case raw.Password != nil:
		s.Password = b.expand(key+".password", raw.Password)
	case raw.PasswordFile != nil:
		k := key + ".password_file"
		if file, ok := b.expandOK(k, raw.PasswordFile); ok {
			s.PasswordFile, s.Password = file, b.readSecret(k, file)
		}
	}
	if raw.TLS != nil {
		s.TLS = b.sharedTLS(key+".tls", raw.TLS)
	}
	if raw.DB != nil {
		s.DB = *raw.DB
		switch {
		case s.DB < 0:
			b.fail(key+".db", ErrInvalidValue, "must be 0 or more, got %d", s.DB)
		case s.DB != 0 && len(raw.Addresses) > 1:
			b.fail(key+".db", ErrInvalidValue, "Redis Cluster (several addresses) has database 0 only, got %d", s.DB)
		}
	}
	if raw.Prefix != nil {
		s.Prefix = *raw.Prefix
	}
	b.duration(key+".timeout", raw.Timeout, &s.Timeout, true)
	if raw.KeysFile == nil || *raw.KeysFile == "" {
		b.fail(key+".keys_file", ErrInvalidValue, "required: a file of base64 32-byte keys, one a line (the first encrypts, all decrypt)")
	} else {
		s.KeysFile = b.path(*raw.KeysFile)
		var err error
		if s.Keys, err = ReadKeys(s.KeysFile); err != nil {
			b.fail(key+".keys_file", ErrSecretFile, "%v", err)
		}
	}
	return s
}

func (b *builder) sharedTLS(key string, raw *rawSharedTLS) *SharedTLS {
	t := &SharedTLS{}
	if raw.CAFile != nil {
		t.CAFile, t.RootCAs = b.caFile(key+".ca_file", *raw.CAFile)
	}
	cert, keyFile := deref(raw.CertFile), deref(raw.KeyFile)
	switch {
	case cert == "" && keyFile == "":
	case cert == "" || keyFile == "":
		b.fail(key+".cert_file", ErrInvalidValue, "cert_file and key_file go together")
	default:
		t.CertFile, t.KeyFile = b.path(cert), b.path(keyFile)
		pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			b.fail(key+".cert_file", ErrInvalidValue, "%v", err)
		} else {
			t.Certificates = []tls.Certificate{pair}
		}
	}
	return t
}

// ReadKeys reads a keys file: one base64 key of 32 bytes a line; blank
// lines and lines starting with # are skipped. Errors never quote a key.
func ReadKeys(file string) ([][]byte, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var keys [][]byte
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(string(line))
		if err != nil {
			k, err = base64.RawStdEncoding.DecodeString(string(line))
		}
		if err != nil || len(k) != 32 {
			return nil, fmt.Errorf("%s line %d: not a base64 32-byte key (make one with: openssl rand -base64 32)", file, i+1)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s holds no key", file)
	}
	return keys, nil
}

// path resolves a file name relative to the config file's folder.
func (b *builder) path(file string) string {
	if file == "" || filepath.IsAbs(file) {
		return file
	}
	return filepath.Join(b.dir, file)
}

// validAddress reports whether a is host:port with a port in 1-65535.
func validAddress(a string) bool {
	host, port, err := net.SplitHostPort(a)
	if err != nil || host == "" || strings.ContainsAny(host, "/ @?#") {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 1 && n <= 65535
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
