package tokens

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeJWT is an unsigned JWT-shaped token with sub and exp: what a token
// file holds, as far as tokenauthz looks into it.
func fakeJWT(sub string, exp time.Time, jti string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." +
		enc(fmt.Appendf(nil, `{"sub":%q,"exp":%d,"jti":%q}`, sub, exp.Unix(), jti)) + ".c2ln"
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	// Written beside and renamed, as the kubelet swaps projected tokens.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestClientAssertionFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "idp-token")
	first := fakeJWT("system:serviceaccount:ns:tokenauthz", testNow.Add(time.Hour), "1")
	writeFile(t, path, first+"\n")
	auth := ClientAssertion(NewTokenFile("client_assertion_file", path), "urn:ietf:params:oauth:client-assertion-type:jwt-spiffe")
	ep, srv := newEndpoint(t, 200, `{"access_token":"at","token_type":"Bearer"}`)
	c := &Client{Now: func() time.Time { return testNow }}
	r := ccRequest()
	r.Auth = auth
	fetch := func() error { _, err := c.Fetch(context.Background(), srv.URL, r); return err }

	if err := fetch(); err != nil {
		t.Fatal(err)
	}
	form, header := ep.last()
	if form.Get("client_assertion") != first || form.Get("client_id") != "orders" || header.Get("Authorization") != "" ||
		form.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-spiffe" {
		t.Fatalf("form %v", form)
	}
	id := auth.Identity()

	t.Run("rotation-is-used-and-keeps-the-identity", func(t *testing.T) {
		second := fakeJWT("system:serviceaccount:ns:tokenauthz", testNow.Add(2*time.Hour), "2")
		writeFile(t, path, second)
		if err := fetch(); err != nil {
			t.Fatal(err)
		}
		if form, _ := ep.last(); form.Get("client_assertion") != second {
			t.Fatal("the rotated assertion was not sent")
		}
		if auth.Identity() != id {
			t.Error("a rotated assertion of the same subject changed the identity")
		}
	})
	t.Run("another-subject-is-another-identity", func(t *testing.T) {
		writeFile(t, path, fakeJWT("system:serviceaccount:ns:other", testNow.Add(time.Hour), "3"))
		if err := fetch(); err != nil {
			t.Fatal(err)
		}
		if auth.Identity() == id {
			t.Error("an assertion of another subject kept the identity")
		}
	})
	broken := []struct {
		name, text, want string
	}{
		{"expired", fakeJWT("a", testNow.Add(-time.Second), "4"), "expired"},
		{"empty", " \n", "empty"},
		{"missing", "", "missing"},
	}
	for _, tt := range broken {
		t.Run(tt.name+"-is-client-rejected-naming-the-file", func(t *testing.T) {
			if tt.name == "missing" {
				os.Remove(path)
			} else {
				writeFile(t, path, tt.text)
			}
			before, _ := ep.last()
			err := fetch()
			if !errors.Is(err, ErrClientRejected) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrClientRejected naming %s and %q", err, path, tt.want)
			}
			if after, _ := ep.last(); after.Get("client_assertion") != before.Get("client_assertion") {
				t.Error("a request was sent with a broken assertion")
			}
			if uerr := Unusable(auth, testNow); uerr == nil || !strings.Contains(uerr.Error(), tt.want) {
				t.Errorf("Unusable = %v", uerr)
			}
		})
	}
}

func TestActorToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jwt-svid")
	actor := fakeJWT("spiffe://example.org/tokenauthz", testNow.Add(time.Hour), "a1")
	writeFile(t, path, actor)
	ep, srv := newEndpoint(t, 200, `{"access_token":"at","token_type":"Bearer"}`)
	c := &Client{Now: func() time.Time { return testNow }}
	r := exchangeRequest()
	r.Actor, r.ActorTokenType = NewTokenFile("actor_token_file", path), "urn:ietf:params:oauth:token-type:jwt"
	if _, err := c.Fetch(context.Background(), srv.URL, r); err != nil {
		t.Fatal(err)
	}
	form, _ := ep.last()
	if form.Get("actor_token") != actor || form.Get("actor_token_type") != "urn:ietf:params:oauth:token-type:jwt" {
		t.Fatalf("form %v", form)
	}
	if strings.Contains(r.Form().Encode(), actor) {
		t.Error("Form() holds the actor token: explain would print it")
	}
	t.Run("client-credentials-sends-no-actor", func(t *testing.T) {
		cc := r
		cc.GrantType = GrantClientCredentials
		if _, err := c.Fetch(context.Background(), srv.URL, cc); err != nil {
			t.Fatal(err)
		}
		if form, _ := ep.last(); form.Has("actor_token") {
			t.Fatal("actor_token sent on client credentials")
		}
	})
	t.Run("missing-file-is-client-rejected", func(t *testing.T) {
		os.Remove(path)
		_, err := c.Fetch(context.Background(), srv.URL, r)
		if !errors.Is(err, ErrClientRejected) || !strings.Contains(err.Error(), "actor_token_file "+path) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestJWTBearerCachedNoLongerThanTheAssertion(t *testing.T) {
	f := &fetcher{clk: newClock(), ttl: time.Hour}
	s := newTestSource(f, Options{})
	r := ccRequest()
	r.GrantType = GrantJWTBearer
	alice := fakeJWT("alice", testNow.Add(5*time.Minute), "j1")
	for _, subject := range []string{alice, alice, fakeJWT("bob", testNow.Add(time.Hour), "j2")} {
		r.SubjectToken = subject
		mustToken(t, s, r)
	}
	if n := f.calls.Load(); n != 2 {
		t.Fatalf("%d fetches for two users, want 2", n)
	}
	f.clk.Add(5 * time.Minute)
	r.SubjectToken = alice
	mustToken(t, s, r)
	if f.calls.Load() != 3 {
		t.Fatal("alice's token was served past her assertion's exp")
	}
}
