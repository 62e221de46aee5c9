package tokens

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tokenauthz/tokenauthz/internal/testkeys"
)

// Test keys are made once per run: RSA generation takes a while.
var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
	p256Key = mustEC(elliptic.P256())
	p384Key = mustEC(elliptic.P384())
)

func testRSA(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	rsaOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return rsaKey
}

func mustEC(c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

func sec1(t testing.TB, key *ecdsa.PrivateKey) *pem.Block {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
}

func TestReadPrivateKey(t *testing.T) {
	dir := t.TempDir()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	cert := testkeys.NewCA(t, "ca").Issue(t, p256Key, "c", 2)
	tests := []struct {
		name    string
		blocks  []*pem.Block
		wantAlg string
		wantErr string
	}{
		{"rsa-pkcs1", []*pem.Block{{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(testRSA(t))}}, AlgRS256, ""},
		{"rsa-pkcs8", []*pem.Block{testkeys.PKCS8(t, testRSA(t))}, AlgRS256, ""},
		{"ec-p256-sec1", []*pem.Block{sec1(t, p256Key)}, AlgES256, ""},
		{"ec-p384-pkcs8", []*pem.Block{testkeys.PKCS8(t, p384Key)}, AlgES384, ""},
		{"certificate-before-the-key", []*pem.Block{cert, sec1(t, p256Key)}, AlgES256, ""},
		{"ec-p521-refused", []*pem.Block{sec1(t, mustEC(elliptic.P521()))}, "", "P-521"},
		{"rsa-1024-refused", []*pem.Block{testkeys.PKCS8(t, small)}, "", "1024 bits"},
		{"encrypted-refused", []*pem.Block{{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}}, "", "encrypted"},
		{"garbage-der", []*pem.Block{{Type: "PRIVATE KEY", Bytes: []byte("nope")}}, "", "private key"},
		{"certificate-only", []*pem.Block{cert}, "", "no PEM private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := ReadPrivateKey(testkeys.Write(t, dir, tt.name+".pem", tt.blocks...))
			if tt.wantErr != "" {
				if !errors.Is(err, ErrKeyFile) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want ErrKeyFile saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if alg, err := SigningAlg(key, ""); err != nil || alg != tt.wantAlg {
				t.Fatalf("default alg %q %v, want %s", alg, err, tt.wantAlg)
			}
		})
	}
	if _, err := ReadPrivateKey(filepath.Join(dir, "absent.pem")); !errors.Is(err, ErrKeyFile) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestSigningAlg(t *testing.T) {
	tests := []struct {
		name string
		key  crypto.Signer
		alg  string
		ok   bool
	}{
		{"rsa-rs256", testRSA(t), AlgRS256, true},
		{"rsa-ps256", testRSA(t), AlgPS256, true},
		{"rsa-es256", testRSA(t), AlgES256, false},
		{"p256-es256", p256Key, AlgES256, true},
		{"p256-es384", p256Key, AlgES384, false},
		{"p256-rs256", p256Key, AlgRS256, false},
		{"p384-es384", p384Key, AlgES384, true},
		{"p384-es256", p384Key, AlgES256, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SigningAlg(tt.key, tt.alg)
			if tt.ok != (err == nil) || (tt.ok && got != tt.alg) || (!tt.ok && !errors.Is(err, ErrAlg)) {
				t.Fatalf("SigningAlg = %q, %v", got, err)
			}
		})
	}
}

func TestWatchedKeepsLastGoodValueMidRotation(t *testing.T) {
	dir := t.TempDir()
	path := testkeys.Write(t, dir, "key.pem", sec1(t, p256Key))
	w, err := newWatched(func() (crypto.Signer, error) { return ReadPrivateKey(path) }, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("half written"), 0o600); err != nil {
		t.Fatal(err)
	}
	if k, err := w.get(); err != nil || !k.Public().(*ecdsa.PublicKey).Equal(&p256Key.PublicKey) {
		t.Fatalf("mid-rotation: %v, want the previous key", err)
	}
	testkeys.Write(t, dir, "key.pem", sec1(t, p384Key))
	if k, err := w.get(); err != nil || !k.Public().(*ecdsa.PublicKey).Equal(&p384Key.PublicKey) {
		t.Fatalf("after rotation: %v, want the new key", err)
	}
}
