package tokens

import (
	"context"
	"testing"

	"github.com/tokenauthz/tokenauthz/internal/testkeys"
)

// BenchmarkFetch puts the cost of one private_key_jwt assertion next to
// that of a whole fetch over loopback: each fetch of private_key_jwt signs
// one assertion, and only fetches do (a cache hit signs nothing).
//
//	go test -run '^$' -bench 'Fetch|Assertion' -benchmem ./tokens
func BenchmarkFetch(b *testing.B) {
	dir := b.TempDir()
	rsaFile := testkeys.Write(b, dir, "rsa.pem", testkeys.PKCS8(b, testRSA(b)))
	ecFile := testkeys.Write(b, dir, "ec.pem", sec1(b, p256Key))
	methods := []struct {
		name string
		auth func() ClientAuth
	}{
		{"basic", func() ClientAuth { return Basic("s3cret", "bench") }},
		{"private-key-jwt-RS256", keyJWT(b, KeyJWT{KeyFile: rsaFile})},
		{"private-key-jwt-PS256", keyJWT(b, KeyJWT{KeyFile: rsaFile, Alg: AlgPS256})},
		{"private-key-jwt-ES256", keyJWT(b, KeyJWT{KeyFile: ecFile})},
	}
	_, srv := newEndpoint(b, 200, `{"access_token":"at","token_type":"Bearer","expires_in":60}`)
	for _, m := range methods {
		b.Run(m.name, func(b *testing.B) {
			r := ccRequest()
			r.Auth = m.auth()
			c := &Client{}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Fetch(context.Background(), srv.URL, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAssertion is the signature alone, per algorithm.
func BenchmarkAssertion(b *testing.B) {
	dir := b.TempDir()
	rsaFile := testkeys.Write(b, dir, "rsa.pem", testkeys.PKCS8(b, testRSA(b)))
	ecFile := testkeys.Write(b, dir, "ec.pem", sec1(b, p256Key))
	for _, tt := range []struct {
		name string
		c    KeyJWT
	}{
		{"RS256", KeyJWT{KeyFile: rsaFile}},
		{"PS256", KeyJWT{KeyFile: rsaFile, Alg: AlgPS256}},
		{"ES256", KeyJWT{KeyFile: ecFile}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			a := keyJWT(b, tt.c)().(*privateKeyJWT)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.sign("orders", "https://idp.example/token", testNow); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func keyJWT(b *testing.B, c KeyJWT) func() ClientAuth {
	a, err := PrivateKeyJWT(c)
	if err != nil {
		b.Fatal(err)
	}
	return func() ClientAuth { return a }
}
