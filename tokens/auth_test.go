package tokens

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokenauthz/tokenauthz/internal/testkeys"
)

// verifyAssertion checks a private_key_jwt assertion's signature with pub
// and returns its header and claims.
func verifyAssertion(t *testing.T, assertion string, alg string, pub crypto.PublicKey) (jose.Header, assertionClaims) {
	t.Helper()
	jws, err := jose.ParseSigned(assertion, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
	if err != nil {
		t.Fatalf("assertion does not parse as a %s JWS: %v", alg, err)
	}
	payload, err := jws.Verify(pub)
	if err != nil {
		t.Fatalf("assertion signature: %v", err)
	}
	var c assertionClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	return jws.Signatures[0].Protected, c
}

func TestPrivateKeyJWT(t *testing.T) {
	dir := t.TempDir()
	rsaFile := testkeys.Write(t, dir, "rsa.pem", testkeys.PKCS8(t, testRSA(t)))
	ecFile := testkeys.Write(t, dir, "ec.pem", sec1(t, p256Key))
	p384File := testkeys.Write(t, dir, "p384.pem", testkeys.PKCS8(t, p384Key))
	certBlock := testkeys.NewCA(t, "ca").Issue(t, testRSA(t), "tokenauthz", 7)
	certFile := testkeys.Write(t, dir, "rsa.crt", certBlock)
	sum := sha256.Sum256(certBlock.Bytes)
	x5t := base64.RawURLEncoding.EncodeToString(sum[:])
	tests := []struct {
		name    string
		c       KeyJWT
		pub     crypto.PublicKey
		wantAlg string
		wantAud string // "": the token URL
		wantX5t string
	}{
		{"rsa-default-rs256-with-kid", KeyJWT{KeyFile: rsaFile, KeyID: "key-2026-01"}, testRSA(t).Public(), AlgRS256, "", ""},
		{"rsa-ps256-with-certificate", KeyJWT{KeyFile: rsaFile, Alg: AlgPS256, CertFile: certFile}, testRSA(t).Public(), AlgPS256, "", x5t},
		{"ec-p256-default-es256-audience", KeyJWT{KeyFile: ecFile, Audience: "https://login.example/tenant"}, p256Key.Public(), AlgES256, "https://login.example/tenant", ""},
		{"ec-p384-default-es384", KeyJWT{KeyFile: p384File}, p384Key.Public(), AlgES384, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			auth, err := PrivateKeyJWT(tt.c)
			if err != nil {
				t.Fatal(err)
			}
			ep, srv := newEndpoint(t, 200, `{"access_token":"at","token_type":"Bearer","expires_in":60}`)
			r := ccRequest()
			r.Auth = auth
			var jtis []string
			for range 2 {
				c := &Client{Now: func() time.Time { return testNow }}
				if _, err := c.Fetch(context.Background(), srv.URL+"/token", r); err != nil {
					t.Fatal(err)
				}
				form, header := ep.last()
				if header.Get("Authorization") != "" || form.Get("client_id") != "orders" ||
					form.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
					t.Fatalf("form %v, Authorization %q", form, header.Get("Authorization"))
				}
				h, claims := verifyAssertion(t, form.Get("client_assertion"), tt.wantAlg, tt.pub)
				wantAud := tt.wantAud
				if wantAud == "" {
					wantAud = srv.URL + "/token"
				}
				if claims.Iss != "orders" || claims.Sub != "orders" || claims.Aud != wantAud ||
					claims.Iat != testNow.Unix() || claims.Nbf != testNow.Unix() || claims.Exp != testNow.Add(AssertionLifetime).Unix() {
					t.Errorf("claims %+v", claims)
				}
				if h.KeyID != tt.c.KeyID || h.ExtraHeaders["typ"] != "JWT" || h.ExtraHeaders["x5t#S256"] != nilIfEmpty(tt.wantX5t) {
					t.Errorf("header kid %q extra %v", h.KeyID, h.ExtraHeaders)
				}
				jtis = append(jtis, claims.Jti)
			}
			if len(jtis[0]) < 20 || jtis[0] == jtis[1] {
				t.Errorf("jti %q then %q: want two random ones", jtis[0], jtis[1])
			}
			if s := auth.String(); !strings.Contains(s, tt.c.KeyFile) || !strings.Contains(s, tt.wantAlg) || strings.Contains(s, "PRIVATE") {
				t.Errorf("String() = %q", s)
			}
		})
	}
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func TestPrivateKeyJWTRefusesMismatchedMaterial(t *testing.T) {
	dir := t.TempDir()
	rsaFile := testkeys.Write(t, dir, "rsa.pem", testkeys.PKCS8(t, testRSA(t)))
	otherCert := testkeys.NewCA(t, "ca").Issue(t, p256Key, "other", 2)
	tests := []struct {
		name string
		c    KeyJWT
		want error
	}{
		{"missing-key", KeyJWT{KeyFile: filepath.Join(dir, "absent.pem")}, ErrKeyFile},
		{"alg-for-another-key", KeyJWT{KeyFile: rsaFile, Alg: AlgES256}, ErrAlg},
		{"certificate-of-another-key", KeyJWT{KeyFile: rsaFile, CertFile: testkeys.Write(t, dir, "other.crt", otherCert)}, ErrCertKeyPair},
		{"certificate-not-pem", KeyJWT{KeyFile: rsaFile, CertFile: testkeys.Write(t, dir, "key-as-cert.crt", testkeys.PKCS8(t, testRSA(t)))}, ErrCertFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := PrivateKeyJWT(tt.c); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestPrivateKeyJWTUsesARotatedKey(t *testing.T) {
	dir := t.TempDir()
	keyFile := testkeys.Write(t, dir, "key.pem", sec1(t, p256Key))
	auth, err := PrivateKeyJWT(KeyJWT{KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	id := auth.Identity()
	rotated := mustEC(p256Key.Curve)
	testkeys.Write(t, dir, "key.pem", testkeys.PKCS8(t, rotated)) // another size than SEC1: seen as changed
	ep, srv := newEndpoint(t, 200, `{"access_token":"at","token_type":"Bearer"}`)
	r := ccRequest()
	r.Auth = auth
	if _, err := (&Client{}).Fetch(context.Background(), srv.URL, r); err != nil {
		t.Fatal(err)
	}
	form, _ := ep.last()
	verifyAssertion(t, form.Get("client_assertion"), AlgES256, rotated.Public())
	if auth.Identity() != id {
		t.Error("a key rotated on disk changed the identity: the cache would start afresh")
	}
	os.Remove(keyFile)
	if err := Unusable(auth, testNow); err != nil {
		t.Errorf("a key removed after a good read: %v, want the last good key kept", err)
	}
}

func TestIdentities(t *testing.T) {
	dir := t.TempDir()
	rsaFile := testkeys.Write(t, dir, "rsa.pem", testkeys.PKCS8(t, testRSA(t)))
	ecFile := testkeys.Write(t, dir, "ec.pem", sec1(t, p256Key))
	mk := func(c KeyJWT) ClientAuth {
		a, err := PrivateKeyJWT(c)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	all := []ClientAuth{
		Basic("secret-one", "a"), Basic("secret-two", "a"), Post("secret-one", "a"), NoClientAuth(),
		mk(KeyJWT{KeyFile: rsaFile}), mk(KeyJWT{KeyFile: ecFile}), mk(KeyJWT{KeyFile: rsaFile, KeyID: "k2"}),
		mk(KeyJWT{KeyFile: rsaFile, Alg: AlgPS256}), mk(KeyJWT{KeyFile: rsaFile, Audience: "aud"}),
		ClientAssertion(NewTokenFile("client_assertion_file", filepath.Join(dir, "a")), AssertionTypeJWTBearer),
		ClientAssertion(NewTokenFile("client_assertion_file", filepath.Join(dir, "b")), AssertionTypeJWTBearer),
		ClientAssertion(NewTokenFile("client_assertion_file", filepath.Join(dir, "a")), "urn:ietf:params:oauth:client-assertion-type:jwt-spiffe"),
	}
	var ids []string
	for _, a := range all {
		id := a.Identity()
		if slices.Contains(ids, id) {
			t.Errorf("%s shares its identity with another credential", a)
		}
		if strings.Contains(id, "secret-one") || strings.Contains(id, "secret-two") {
			t.Errorf("identity of %s holds the secret", a)
		}
		ids = append(ids, id)
	}
	if Basic("s1", "a").Identity() != Basic("s1", "elsewhere").Identity() {
		t.Error("the same secret from another key has another identity")
	}
}

func TestKeyDoesNotAllocateForSecretlessMethods(t *testing.T) {
	dir := t.TempDir()
	keyAuth, err := PrivateKeyJWT(KeyJWT{KeyFile: testkeys.Write(t, dir, "k.pem", sec1(t, p256Key))})
	if err != nil {
		t.Fatal(err)
	}
	assertion := ClientAssertion(NewTokenFile("client_assertion_file", filepath.Join(dir, "a")), AssertionTypeJWTBearer)
	for _, auth := range []ClientAuth{keyAuth, assertion} {
		r := exchangeRequest()
		r.Auth, r.Actor, r.Params = auth, NewTokenFile("actor_token_file", filepath.Join(dir, "actor")), []Param{{"a", "b"}}
		if n := testing.AllocsPerRun(100, func() { keySink = Key(r) }); n > 1 {
			t.Errorf("Key with %s: %v allocations, want 1 (the result)", auth, n)
		}
	}
}
