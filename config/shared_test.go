package config

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

const sharedServices = `
services:
  orders: {hosts: [orders.internal], grant_type: client_credentials, token_url: "http://127.0.0.1:4444/oauth2/token", client_id: tokenauthz, client_secret: s3cret}
`

func TestLoadShared(t *testing.T) {
	dir := t.TempDir()
	writeSelfSigned(t, dir)
	keys, _ := os.ReadFile(filepath.Join("testdata", "shared", "cache-keys"))
	for name, data := range map[string][]byte{"cache-keys": keys, "redis-password": []byte("file-s3cret\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("TOKENAUTHZ_TEST_REDIS_PASSWORD", "env-s3cret")
	tests := []struct {
		name  string
		yaml  string
		check func(t *testing.T, c Cache)
	}{
		{"absent-means-in-process", "cache: {prewarm: true}", func(t *testing.T, c Cache) {
			if c.Shared != nil || !c.Prewarm {
				t.Errorf("Shared = %+v, Prewarm = %v; want nil, true", c.Shared, c.Prewarm)
			}
		}},
		{"defaults-and-file-password", `cache:
  shared: {addresses: ["127.0.0.1:6379"], password_file: redis-password, keys_file: cache-keys}`, func(t *testing.T, c Cache) {
			s := c.Shared
			if s.Prefix != "tokenauthz:" || s.Timeout != 100*time.Millisecond || s.DB != 0 || s.TLS != nil || c.Prewarm {
				t.Errorf("defaults: %+v, prewarm %v", s, c.Prewarm)
			}
			if s.Password != "file-s3cret" || s.KeysFile != filepath.Join(dir, "cache-keys") {
				t.Errorf("password %q, keys file %q: want the trimmed file, relative to the config", s.Password, s.KeysFile)
			}
			if len(s.Keys) != 2 || !bytes.Equal(s.Keys[0], bytes.Repeat([]byte{1}, 32)) || !bytes.Equal(s.Keys[1], bytes.Repeat([]byte{2}, 32)) {
				t.Errorf("keys = %x", s.Keys)
			}
		}},
		{"everything-set", `cache:
  shared:
    addresses: ["10.0.0.1:7000", "[::1]:7001"]
    username: tokenauthz
    password: ${TOKENAUTHZ_TEST_REDIS_PASSWORD}
    tls: {ca_file: ca.pem, cert_file: ca.pem, key_file: key.pem}
    prefix: "fleet-a:"
    keys_file: cache-keys
    timeout: 250ms`, func(t *testing.T, c Cache) {
			s := c.Shared
			if len(s.Addresses) != 2 || s.Username != "tokenauthz" || s.Password != "env-s3cret" || s.Prefix != "fleet-a:" || s.Timeout != 250*time.Millisecond {
				t.Errorf("shared = %+v", s)
			}
			if s.TLS == nil || s.TLS.RootCAs == nil || len(s.TLS.Certificates) != 1 || s.TLS.CAFile != filepath.Join(dir, "ca.pem") {
				t.Errorf("tls = %+v", s.TLS)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name+".yaml")
			if err := os.WriteFile(path, []byte(tt.yaml+sharedServices), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, cfg.Cache)
		})
	}
}

func TestCacheEqual(t *testing.T) {
	base := Cache{ExpirySkew: time.Second, Shared: &SharedCache{Addresses: []string{"a:1"}, Keys: [][]byte{{1}}, TLS: &SharedTLS{CAFile: "ca"}}}
	same := base
	same.Shared = &SharedCache{Addresses: []string{"a:1"}, Keys: [][]byte{{2}}, TLS: &SharedTLS{CAFile: "ca"}}
	tests := []struct {
		name  string
		other func(c Cache) Cache
		equal bool
	}{
		{"only-keys-differ", func(Cache) Cache { return same }, true},
		{"other-address", func(c Cache) Cache {
			s := *c.Shared
			s.Addresses = []string{"b:1"}
			c.Shared = &s
			return c
		}, false},
		{"tls-dropped", func(c Cache) Cache {
			s := *c.Shared
			s.TLS = nil
			c.Shared = &s
			return c
		}, false},
		{"shared-dropped", func(c Cache) Cache { c.Shared = nil; return c }, false},
		{"prewarm-on", func(c Cache) Cache { c.Prewarm = true; return c }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := base.Equal(tt.other(base)); got != tt.equal {
				t.Errorf("Equal = %v, want %v", got, tt.equal)
			}
		})
	}
}

// writeSelfSigned writes ca.pem (a self-signed certificate) and key.pem.
func writeSelfSigned(t *testing.T, dir string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
}
