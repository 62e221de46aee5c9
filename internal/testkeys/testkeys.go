// Package testkeys makes the keys, certificates and signed JWTs that tests
// of client authentication need, and writes them as PEM files. For tests
// only: nothing here is protected.
package testkeys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// RSA is a new 2048-bit RSA key.
func RSA(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// EC is a new key on curve.
func EC(t testing.TB, curve elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// PKCS8 is key as a "PRIVATE KEY" PEM block.
func PKCS8(t testing.TB, key crypto.Signer) *pem.Block {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &pem.Block{Type: "PRIVATE KEY", Bytes: der}
}

// Write writes blocks as PEM to dir/name, renaming it into place as
// Kubernetes volumes and cert-manager do, and returns the path.
func Write(t testing.TB, dir, name string, blocks ...*pem.Block) string {
	t.Helper()
	var data []byte
	for _, b := range blocks {
		data = append(data, pem.EncodeToMemory(b)...)
	}
	return WriteFile(t, dir, name, data)
}

// WriteFile writes data to dir/name by a rename and returns the path.
func WriteFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path+".tmp", data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
	return path
}

// CA is a certificate authority for tests.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewCA is a self-signed CA named cn.
func NewCA(t testing.TB, cn string) *CA {
	t.Helper()
	key := EC(t, elliptic.P256())
	ca := &CA{Key: key}
	ca.Cert, _ = ca.issue(t, key, cn, 1, true)
	return ca
}

// Issue certifies key for cn with serial, valid for clients and for the
// server 127.0.0.1 / localhost, for a day. It returns the PEM block.
func (ca *CA) Issue(t testing.TB, key crypto.Signer, cn string, serial int64) *pem.Block {
	t.Helper()
	_, block := ca.issue(t, key, cn, serial, false)
	return block
}

// CertPEM is the CA's certificate as a PEM block.
func (ca *CA) CertPEM() *pem.Block { return &pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw} }

func (ca *CA) issue(t testing.TB, key crypto.Signer, cn string, serial int64, isCA bool) (*x509.Certificate, *pem.Block) {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	parent, parentKey := ca.Cert, ca.Key
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, &pem.Block{Type: "CERTIFICATE", Bytes: der}
}

// JWK is key's public half as a signing JWK.
func JWK(key crypto.Signer, kid, alg string) jose.JSONWebKey {
	return jose.JSONWebKey{Key: key.Public(), KeyID: kid, Algorithm: alg, Use: "sig"}
}

// Claims are the registered claims of an assertion from iss about sub for
// aud, with a random jti, issued now and valid ttl.
func Claims(iss, sub, aud string, ttl time.Duration) map[string]any {
	now := time.Now()
	return map[string]any{"iss": iss, "sub": sub, "aud": aud, "jti": rand.Text(),
		"iat": now.Unix(), "exp": now.Add(ttl).Unix()}
}

// SignJWT signs claims with key (kid in the header when set): the
// assertions a kubelet, a SPIFFE agent or a user's IdP would issue.
func SignJWT(t testing.TB, key crypto.Signer, alg jose.SignatureAlgorithm, kid string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}
