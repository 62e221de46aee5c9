package tokens

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// AssertionLifetime is the validity (exp - iat) of the assertions
// private_key_jwt signs: enough for clock skew between us and the IdP, short
// enough that a captured assertion is soon useless. Each fetch signs a new
// one, with a new jti.
const AssertionLifetime = 60 * time.Second

// AssertionTypeJWTBearer is the client_assertion_type of a JWT (RFC 7523
// section 2.2).
const AssertionTypeJWTBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// KeyJWT configures PrivateKeyJWT.
type KeyJWT struct {
	KeyFile  string // RSA or EC private key, PEM
	KeyID    string // the JWT header's kid, when set
	CertFile string // optional: its leaf's SHA-256 goes in the x5t#S256 header (Entra ID)
	Alg      string // one of Algs; "" means the key's default (see SigningAlg)
	Audience string // "" means the token endpoint URL of each request
}

// privateKeyJWT is private_key_jwt (RFC 7523 section 2.2, OpenID Connect
// Core section 9): each request carries a fresh assertion signed with the
// client's key. Key and certificate files are re-read when they change.
type privateKeyJWT struct {
	c    KeyJWT
	key  *watched[crypto.Signer]
	cert *watched[*x509.Certificate] // nil without CertFile
	id   string
	desc string
}

// PrivateKeyJWT reads c's key (and certificate) and returns the method.
// Errors wrap ErrKeyFile, ErrCertFile, ErrAlg or ErrCertKeyPair, joined.
func PrivateKeyJWT(c KeyJWT) (ClientAuth, error) {
	a := &privateKeyJWT{c: c}
	var err error
	if a.key, err = newWatched(func() (crypto.Signer, error) { return ReadPrivateKey(c.KeyFile) }, c.KeyFile); err != nil {
		return nil, err
	}
	key, _ := a.key.get()
	alg, err := SigningAlg(key, c.Alg)
	if err != nil {
		return nil, err
	}
	var subject string
	if c.CertFile != "" {
		if a.cert, err = newWatched(func() (*x509.Certificate, error) { return readLeaf(c.CertFile) }, c.CertFile); err != nil {
			return nil, err
		}
		leaf, _ := a.cert.get()
		if err := matchCertKey(leaf, key); err != nil {
			return nil, err
		}
		subject = leaf.Subject.String()
	}
	thumb, err := thumbprint(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyFile, err)
	}
	a.id = identity("private_key_jwt", thumb, c.KeyID, alg, c.Audience)
	a.desc = describeKeyJWT(c, key, alg, thumb, subject)
	return a, nil
}

func readLeaf(file string) (*x509.Certificate, error) {
	chain, err := ReadCertificates(file)
	if err != nil {
		return nil, err
	}
	return chain[0], nil
}

// thumbprint is the RFC 7638 SHA-256 thumbprint of key's public half.
func thumbprint(key crypto.Signer) (string, error) {
	sum, err := (&jose.JSONWebKey{Key: key.Public()}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

func describeKeyJWT(c KeyJWT, key crypto.Signer, alg, thumb, subject string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "private_key_jwt, key %s (%s, %s, thumbprint %s", c.KeyFile, keyKind(key), alg, thumb)
	if c.KeyID != "" {
		fmt.Fprintf(&b, ", kid %s", c.KeyID)
	}
	b.WriteString(")")
	if c.CertFile != "" {
		fmt.Fprintf(&b, ", x5t#S256 of %s (subject %s)", c.CertFile, subject)
	}
	aud := c.Audience
	if aud == "" {
		aud = "the token endpoint URL"
	}
	fmt.Fprintf(&b, ", aud %s, valid %v", aud, AssertionLifetime)
	return b.String()
}

func (a *privateKeyJWT) Apply(o *Outgoing) error {
	assertion, err := a.sign(o.ClientID, o.TokenURL, o.Now)
	if err != nil {
		return err
	}
	o.setClientID()
	o.Form.Set("client_assertion_type", AssertionTypeJWTBearer)
	o.Form.Set("client_assertion", assertion)
	o.redact(assertion)
	return nil
}

// assertionClaims are those RFC 7523 section 3 requires, plus nbf, which
// Entra ID asks for.
type assertionClaims struct {
	Iss string `json:"iss"`
	Sub string `json:"sub"`
	Aud string `json:"aud"`
	Jti string `json:"jti"`
	Iat int64  `json:"iat"`
	Nbf int64  `json:"nbf"`
	Exp int64  `json:"exp"`
}

// sign makes one assertion: iss = sub = the client, a random jti.
func (a *privateKeyJWT) sign(clientID, tokenURL string, now time.Time) (string, error) {
	key, err := a.key.get()
	if err != nil {
		return "", materialError("private_key_jwt: %v", err)
	}
	alg, err := SigningAlg(key, a.c.Alg) // a rotated key may be of another type
	if err != nil {
		return "", materialError("private_key_jwt: %s: %v", a.c.KeyFile, err)
	}
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if a.c.KeyID != "" {
		opts = opts.WithHeader("kid", a.c.KeyID)
	}
	if a.cert != nil {
		leaf, err := a.cert.get()
		if err != nil {
			return "", materialError("private_key_jwt: %v", err)
		}
		sum := sha256.Sum256(leaf.Raw)
		opts = opts.WithHeader("x5t#S256", base64.RawURLEncoding.EncodeToString(sum[:]))
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: key}, opts)
	if err != nil {
		return "", materialError("private_key_jwt: %s: %v", a.c.KeyFile, err)
	}
	aud := a.c.Audience
	if aud == "" {
		aud = tokenURL
	}
	payload, err := json.Marshal(assertionClaims{
		Iss: clientID, Sub: clientID, Aud: aud, Jti: rand.Text(),
		Iat: now.Unix(), Nbf: now.Unix(), Exp: now.Add(AssertionLifetime).Unix(),
	})
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", materialError("private_key_jwt: signing with %s: %v", a.c.KeyFile, err)
	}
	return jws.CompactSerialize()
}

// Identity is the key's thumbprint with kid, alg and audience, taken when
// the configuration was loaded: a key rotated on disk signs from the next
// fetch on and keeps the cached tokens; a reload with another key starts
// afresh.
func (a *privateKeyJWT) Identity() string { return a.id }

func (a *privateKeyJWT) String() string { return a.desc }

// Usable reports whether the key (and certificate) can be read now.
func (a *privateKeyJWT) Usable(time.Time) error {
	_, err := a.key.get()
	if err == nil && a.cert != nil {
		_, err = a.cert.get()
	}
	return err
}
