package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/tokenauthz/tokenauthz/internal/testkeys"
)

const actorConfig = `
defaults:
  issuer: %[1]s
  client_id: tokenauthz
  client_secret: exchange-secret
services:
  delegated:
    hosts: [delegated.internal]
    grant_type: token_exchange
    scope: orders.read
    actor_token_file: %[2]s/jwt-svid
    actor_token_type: urn:ietf:params:oauth:token-type:jwt
`

// TestActorToken: delegation (RFC 8693 section 2.1) against devidp, which
// verifies the actor token and names the actor in the issued token's act
// claim. The actor file is rewritten as spiffe-helper would.
func TestActorToken(t *testing.T) {
	idp := startDevIdP(t)
	dir := t.TempDir()
	writeActor := func(sub string) {
		tok, err := idp.UserToken(sub, time.Hour) // signed by devidp, which trusts it as an actor
		if err != nil {
			t.Fatal(err)
		}
		testkeys.WriteFile(t, dir, "jwt-svid", []byte(tok))
	}
	writeActor("spiffe://example.org/tokenauthz")
	client := startBroker(t, fmt.Sprintf(actorConfig, idp.Issuer(), dir)).client
	alice, err := idp.UserToken("alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	rec := issuedFor(t, idp, injected(t, client, request("GET", "delegated.internal", "/", alice)))
	if rec.Subject != "alice" || rec.Actor != "spiffe://example.org/tokenauthz" {
		t.Fatalf("issued %+v, want alice's token acted for by the workload", rec)
	}
	t.Run("rotated-actor-file-of-another-actor-gets-a-new-token", func(t *testing.T) {
		writeActor("spiffe://example.org/other")
		// The file's subject is looked at once a second: within a few
		// seconds checks get a token exchanged with the new actor.
		var got string
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if got = issuedFor(t, idp, injected(t, client, request("GET", "delegated.internal", "/", alice))).Actor; got == "spiffe://example.org/other" {
				return
			}
		}
		t.Fatalf("actor %q 5 s after the rotation, want the new one", got)
	})
	t.Run("rotated-actor-file-of-the-same-actor-keeps-the-token", func(t *testing.T) {
		before := idp.TokenRequests()
		writeActor("spiffe://example.org/other")
		time.Sleep(1100 * time.Millisecond) // past one look at the file
		injected(t, client, request("GET", "delegated.internal", "/", alice))
		if n := idp.TokenRequests() - before; n != 0 {
			t.Fatalf("%d token requests after a rotation of the same actor, want the cached token", n)
		}
	})
}
