package tokens

import (
	"strings"
	"testing"
)

func TestKey(t *testing.T) {
	base := exchangeRequest()
	base.Issuer = "https://idp.example"
	tests := []struct {
		name     string
		change   func(r *Request)
		wantSame bool
	}{
		{"issuer", func(r *Request) { r.Issuer = "https://other.example" }, false},
		{"token-url", func(r *Request) { r.TokenURL = "https://idp.example/token2" }, false},
		{"client-id", func(r *Request) { r.ClientID = "billing" }, false},
		{"grant", func(r *Request) { r.GrantType = GrantClientCredentials }, false},
		{"scope-added", func(r *Request) { r.Scope = append(r.Scope, "admin") }, false},
		{"scope-removed", func(r *Request) { r.Scope = r.Scope[:1] }, false},
		{"audience", func(r *Request) { r.Audience = "api://billing" }, false},
		{"resource", func(r *Request) { r.Resource = "https://billing/" }, false},
		{"subject-token", func(r *Request) { r.SubjectToken = "another-subject" }, false},
		{"subject-token-type", func(r *Request) { r.SubjectTokenType = "urn:ietf:params:oauth:token-type:jwt" }, false},
		{"requested-token-type", func(r *Request) { r.RequestedTokenType = "urn:ietf:params:oauth:token-type:jwt" }, false},
		{"field-boundary-shift", func(r *Request) { r.Issuer, r.TokenURL = r.Issuer+r.TokenURL[:3], r.TokenURL[3:] }, false},
		{"scopes-joined", func(r *Request) { r.Scope = []string{"readwrite"} }, false},
		{"scope-order", func(r *Request) { r.Scope = []string{"write", "read"} }, true},
		{"scope-duplicate", func(r *Request) { r.Scope = []string{"read", "write", "read"} }, true},
		{"client-secret-rotated", func(r *Request) { r.Auth = Basic("rotated", "test") }, false},
		{"client-auth", func(r *Request) { r.Auth = Post("s3cret", "test") }, false},
		{"client-secret-from-elsewhere", func(r *Request) { r.Auth = Basic("s3cret", "other.key") }, true},
		{"no-client-auth", func(r *Request) { r.Auth = nil }, false},
		{"no-client-auth-explicit", func(r *Request) { r.Auth = NoClientAuth() }, false},
		{"param-added", func(r *Request) { r.Params = []Param{{"tenant", "a"}} }, false},
		{"param-name-value-shift", func(r *Request) { r.Params = []Param{{"tenan", "ta"}} }, false},
		{"actor-added", func(r *Request) { r.Actor = NewTokenFile("actor_token_file", "/nonexistent/actor") }, false},
		{"jwt-bearer-instead", func(r *Request) { r.GrantType = GrantJWTBearer }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := base
			r.Scope = append([]string(nil), base.Scope...)
			tt.change(&r)
			if same := Key(r) == Key(base); same != tt.wantSame {
				t.Errorf("same key = %v, want %v", same, tt.wantSame)
			}
		})
	}
}

func TestKeyClientCredentialsIgnoresSubject(t *testing.T) {
	a, b := ccRequest(), ccRequest()
	b.SubjectToken, b.SubjectTokenType = "stray", "stray-type"
	if Key(a) != Key(b) {
		t.Error("subject fields changed a client credentials key")
	}
}

func TestKeyHidesCredentials(t *testing.T) {
	r := exchangeRequest()
	k := Key(r)
	if len(k) != 32 || strings.Contains(k, "s3cret") || strings.Contains(k, r.SubjectToken) {
		t.Errorf("Key = %q, want a 32-byte hash", k)
	}
}

func TestKeyManyScopes(t *testing.T) {
	r := ccRequest()
	r.Scope = strings.Fields("j i h g f e d c b a")
	s := ccRequest()
	s.Scope = strings.Fields("a b c d e f g h i j")
	if Key(r) != Key(s) {
		t.Error("scope order changed the key past the stack buffer")
	}
	if r.Scope[0] != "j" {
		t.Error("Key reordered the caller's scopes")
	}
}

var keySink string

func BenchmarkKey(b *testing.B) {
	tests := []struct {
		name string
		req  Request
	}{
		{"client-credentials", ccRequest()},
		{"exchange-1k-subject", func() Request { r := exchangeRequest(); r.SubjectToken = strings.Repeat("x", 1024); return r }()},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				keySink = Key(tt.req)
			}
		})
	}
}
